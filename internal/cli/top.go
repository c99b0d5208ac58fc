package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kanto"
	"github.com/kanto-can/kanto-can/internal/sample"
)

// topOptions are top's flags.
type topOptions struct {
	interval time.Duration
	once     bool
	count    int
	sort     string
	output   outputFlag
	kanto    kanto.Store // Kanto's records: containers' names
}

// minTopInterval keeps top from turning into a netlink load generator.
const minTopInterval = 100 * time.Millisecond

func newTop() *cobra.Command {
	var o topOptions
	cmd := &cobra.Command{
		Use:   "top [--interval 1s] [--sort rate|name|bus] [--once [-o table|json]]",
		Short: "Show live what the attachments and their host buses are doing",
		Long: `Show, refreshed every --interval, every host bus that has attachments of
kanto-can and every attachment, read from the kernel (the daemon is not
needed; root or a process with CAP_NET_ADMIN reads them).

Per bus: its state (error-active, error-warning, error-passive, bus-off,
stopped when down), bitrate, whether it carries CAN FD, LOAD (percent of the
bus's capacity, estimated from the controller's frame and byte counters at
the nominal bitrate, counting 11-bit classic frames without stuff bits as
canbusload does without -e: a lower bound; "-" for virtual buses, which have
no bitrate), frames received and sent per second, the controller's error
counters (TXERR/RXERR; 96 is error-warning, 128 error-passive), and its
attachments.

Per attachment: the container (Kanto name, else how it was attached), its
bus, inside name and direction, frames per second bus to container (RX/s)
and container to bus (TX/s), frames per second the gateway could not
deliver (DROP/s) and the transmit rate limit dropped (LIMIT/s), and the
totals since it was attached. An attachment that goes away (its container
stopped) stays in view for 10 s, marked (gone).

On a terminal: q (or Ctrl-C) quits, s cycles the order (rate: busiest
first; name; bus). Elsewhere, or with --count, one screen per interval is
printed (as top -b). --once prints one view, from two readings --interval
apart: -o json for scripts (schema: docs/cli/top.schema.json): time,
interval_seconds, buses (as status shows them, with rx_frames_per_second,
tx_frames_per_second, load_percent, gone) and attachments (named as ls
names them, with rx_frames, tx_frames and dropped since attach, the same
per second, and tx_rate with dropped_per_second).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			order, ok := sample.ParseOrder(o.sort)
			switch {
			case !ok:
				return fmt.Errorf("--sort %q: want rate, name or bus", o.sort)
			case o.interval < minTopInterval:
				return fmt.Errorf("--interval %s: want at least %s", o.interval, minTopInterval)
			case o.count < 0:
				return fmt.Errorf("--count %d: want 0 (until quit) or more", o.count)
			}
			if err := o.output.check(); err != nil {
				return err
			}
			if o.output == "json" && !o.once {
				return errors.New("-o json needs --once")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			t, err := newTopReader(o.kanto)
			if err != nil {
				return err
			}
			defer t.close()
			out := cmd.OutOrStdout()
			if o.once {
				v, err := t.once(ctx, o.interval)
				if err != nil {
					return err
				}
				sample.Sort(v.Attachments, order)
				return o.output.write(out, v, func(w io.Writer) { printTop(w, v) })
			}
			if f, ok := out.(*os.File); ok && o.count == 0 && term.IsTerminal(int(f.Fd())) && term.IsTerminal(int(os.Stdin.Fd())) {
				return t.interactive(ctx, f, os.Stdin, o.interval, order)
			}
			return t.batch(ctx, out, o.interval, order, o.count)
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&o.interval, "interval", "i", time.Second, "time between readings (at least 100ms)")
	f.BoolVar(&o.once, "once", false, "print one view (two readings --interval apart) and exit")
	f.IntVarP(&o.count, "count", "n", 0, "print this many views, one per interval, then exit (0: until quit)")
	f.StringVar(&o.sort, "sort", "rate", "order of the attachments: rate (busiest first), name or bus")
	o.output.register(cmd)
	registerKanto(cmd, &o.kanto)
	return cmd
}

// topReader takes samples through one host connection.
type topReader struct {
	host  *attach.Host
	watch sample.Watch
}

// goneKept is how long a gone attachment stays in view.
const goneKept = 10 * time.Second

func newTopReader(k kanto.Store) (*topReader, error) {
	// The poller's sockets: a read in progress ends when top does.
	h, err := attach.OpenHost(attach.WithPoll(), attach.WithNames(k.Names))
	if err != nil {
		return nil, err
	}
	return &topReader{host: h, watch: sample.Watch{Keep: goneKept}}, nil
}

func (t *topReader) close() { t.host.Close() }

// next takes a sample; ok false for the first, which has no view yet.
func (t *topReader) next() (sample.View, bool, error) {
	s, err := sample.Take(t.host)
	if err != nil {
		return sample.View{}, false, err
	}
	v, ok := t.watch.Next(s)
	return v, ok, nil
}

// once reads twice, interval apart.
func (t *topReader) once(ctx context.Context, interval time.Duration) (sample.View, error) {
	if _, _, err := t.next(); err != nil {
		return sample.View{}, err
	}
	select {
	case <-ctx.Done():
		return sample.View{}, ctx.Err()
	case <-time.After(interval):
	}
	v, _, err := t.next()
	return v, err
}

// views calls show with each view, every interval, until ctx is done,
// show returns false or count views were shown (0: no limit). The first
// sample is taken at once and shown as soon as there is a second one.
func (t *topReader) views(ctx context.Context, interval time.Duration, count int, show func(sample.View) bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for shown := 0; count == 0 || shown < count; {
		v, ok, err := t.next()
		if err != nil {
			return err
		}
		if ok {
			if !show(v) {
				return nil
			}
			shown++
			if count != 0 && shown == count {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// batch prints one screen per interval, as top -b does.
func (t *topReader) batch(ctx context.Context, out io.Writer, interval time.Duration, order sample.Order, count int) error {
	return t.views(ctx, interval, count, func(v sample.View) bool {
		fmt.Fprintln(out, topHeader(v, order))
		sample.Sort(v.Attachments, order)
		printTop(out, v)
		fmt.Fprintln(out)
		return true
	})
}

// interactive draws on the terminal's alternate screen until q, Ctrl-C
// or ctx; s cycles the order.
func (t *topReader) interactive(ctx context.Context, out *os.File, in *os.File, interval time.Duration, order sample.Order) error {
	old, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	defer term.Restore(int(in.Fd()), old)
	fmt.Fprint(out, "\x1b[?1049h\x1b[?25l") // alternate screen, cursor hidden
	defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := make(chan byte)
	go func() {
		r := bufio.NewReader(in)
		for {
			b, err := r.ReadByte()
			if err != nil {
				cancel()
				return
			}
			select {
			case keys <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	var last *sample.View
	draw := func() {
		if last == nil {
			return
		}
		width, height, err := term.GetSize(int(out.Fd()))
		if err != nil {
			width, height = 0, 0
		}
		sample.Sort(last.Attachments, order)
		var buf bytes.Buffer
		fmt.Fprintln(&buf, topHeader(*last, order)+"   q: quit  s: sort")
		printTop(&buf, *last)
		lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
		if height > 0 && len(lines) > height {
			lines = lines[:height]
		}
		for i, l := range lines {
			lines[i] = truncate(l, width)
		}
		// Home, clear, the screen; raw mode needs \r\n.
		fmt.Fprint(out, "\x1b[H\x1b[2J"+strings.Join(lines, "\r\n"))
	}
	views := make(chan sample.View)
	errc := make(chan error, 1)
	go func() {
		errc <- t.views(ctx, interval, 0, func(v sample.View) bool {
			select {
			case views <- v:
				return true
			case <-ctx.Done():
				return false
			}
		})
		cancel()
	}()
	for {
		select {
		case <-ctx.Done():
			cancel()
			return <-errc
		case v := <-views:
			last = &v
			draw()
		case k := <-keys:
			switch k {
			case 'q', 'Q', 3 /* Ctrl-C */, 4 /* Ctrl-D */ :
				cancel()
				return <-errc
			case 's', 'S':
				order = (order + 1) % 3
				draw()
			}
		}
	}
}

// truncate cuts a line to width characters (runes: names may be UTF-8);
// width 0 leaves it whole.
func truncate(s string, width int) string {
	if width <= 0 || len(s) <= width {
		return s
	}
	if r := []rune(s); len(r) > width {
		return string(r[:width])
	}
	return s
}
