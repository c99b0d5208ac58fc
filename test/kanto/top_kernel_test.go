//go:build kernel

package kanto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/sample"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

// topOnce runs kanto-can top --once -o json over interval.
func topOnce(t *testing.T, interval string) sample.View {
	t.Helper()
	out, errOut, code := kerneltest.Run(t, kerneltest.Binary(t), "top", "--once", "-o", "json", "--interval", interval)
	if code != 0 {
		t.Fatalf("kanto-can top --once: exit %d: %s", code, errOut)
	}
	schematest.Validate(t, "docs/cli/top.schema.json", []byte(out))
	var v sample.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("top -o json: %v: %s", err, out)
	}
	return v
}

func within(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*want }

// A container on the emulated Kvaser bus echoes every frame the ECU sends
// (cangen, 10 ms apart): top's rates over a 4 s window are, within 10%, the
// rates a witness counted in that same window (a raw socket on the bus,
// each frame stamped by the kernel as it arrived: the ECU's frames, and
// the container's echoes going out), each way, on the attachment and on
// the bus, and the bus load is what those frames take of its bitrate.
func TestTopRatesFromCangen(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	c := env(t)
	ct := c.Run(t, ns, "top-rates", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=" + bus}, Hooks: hooks(t)})
	ct.WaitOutput(t, "ready", wait)

	const frames, gapMs, dataLen, ecuID = 1000, 10, 8, 0x123
	w := startWitness(t, bus)
	cangen := exec.Command("cangen", ecuIf, "-g", itoa(gapMs), "-n", itoa(frames), "-I", "123", "-L", itoa(dataLen), "-D", "i")
	var cangenErr bytes.Buffer
	cangen.Stderr = &cangenErr
	if err := cangen.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cangen.Process.Kill(); cangen.Wait() })
	// top's window starts once the ECU's frames flow.
	select {
	case <-w.first:
	case <-time.After(wait):
		t.Fatal("no frame from the ECU on the bus")
	}
	v := topOnce(t, "4s")
	stamps := w.stop()
	end := v.Time
	begin := end.Add(-time.Duration(v.Interval * float64(time.Second)))
	var ecu, echoes float64
	for _, f := range stamps {
		if f.at.Before(begin) || f.at.After(end) {
			continue
		}
		if f.id == ecuID {
			ecu++
		} else if f.id == ecuID+1 {
			echoes++
		}
	}
	rxRate, txRate := ecu/v.Interval, echoes/v.Interval
	t.Logf("witness over top's window of %.2f s: %.1f frames/s from the ECU, %.1f echoes/s; top: %+v", v.Interval, rxRate, txRate, v)
	if rxRate < 20 || txRate < 20 {
		t.Fatalf("too little traffic in the window: %.1f and %.1f frames/s", rxRate, txRate)
	}
	rate := rxRate

	var a *sample.Attachment
	for i := range v.Attachments {
		if v.Attachments[i].HostBus == bus && !v.Attachments[i].Gone {
			a = &v.Attachments[i]
		}
	}
	if a == nil {
		t.Fatalf("no attachment on %s in %+v", bus, v.Attachments)
	}
	if !within(a.RxPerSecond, rxRate, 0.1) || !within(a.TxPerSecond, txRate, 0.1) {
		t.Errorf("attachment: %.1f rx/s, %.1f tx/s; want %.1f and %.1f ±10%%", a.RxPerSecond, a.TxPerSecond, rxRate, txRate)
	}
	if a.Direction != "both" || a.RxFrames == 0 || a.RxFrames > frames || rate <= 0 {
		t.Errorf("attachment %+v", a)
	}
	var b *sample.Bus
	for i := range v.Buses {
		if v.Buses[i].Name == bus {
			b = &v.Buses[i]
		}
	}
	if b == nil || b.State != "error-active" || b.Bitrate != kerneltest.KvaserBitrate || b.Load == nil {
		t.Fatalf("bus %+v", b)
	}
	// The bus's controller receives the ECU's frames and sends the echoes.
	if !within(b.RxPerSecond, rxRate, 0.1) || !within(b.TxPerSecond, txRate, 0.1) {
		t.Errorf("bus: %.1f rx/s, %.1f tx/s; want %.1f and %.1f ±10%%", b.RxPerSecond, b.TxPerSecond, rxRate, txRate)
	}
	wantLoad := (rxRate + txRate) * (47 + 8*dataLen) / kerneltest.KvaserBitrate * 100
	if !within(*b.Load, wantLoad, 0.1) {
		t.Errorf("load %.2f%%, want %.2f%% ±10%%", *b.Load, wantLoad)
	}
	if b.Errors == nil || b.Errors.TxErrorCounter == nil || b.Counters == nil {
		t.Errorf("bus counters %+v, errors %+v", b.Counters, b.Errors)
	}
	ct.Stop(t)
	requireNothingOfOurs(t)
}

// stamp is a frame a witness received: its id and the kernel's time of
// arrival.
type stamp struct {
	id uint32
	at time.Time
}

// witness is a raw CAN socket that records every frame with the kernel's
// receive time (SO_TIMESTAMPNS): on a bus, the frames it receives from
// the wire and those others on this host send on it.
type witness struct {
	fd     int
	first  chan struct{} // closed at the first frame
	done   chan struct{}
	stopFn func()
	stamps []stamp
}

func startWitness(t *testing.T, ifname string) *witness {
	t.Helper()
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW, unix.CAN_RAW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct{ opt, v int }{{unix.SO_TIMESTAMPNS, 1}, {unix.SO_RCVBUFFORCE, 8 << 20}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.opt, o.v); err != nil {
			t.Fatal(err)
		}
	}
	// A receive timeout lets stop end the reader.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	w := &witness{fd: fd, first: make(chan struct{}), done: make(chan struct{})}
	stopping := make(chan struct{})
	go func() {
		defer close(w.done)
		buf, oob := make([]byte, 72), make([]byte, 128)
		for {
			select {
			case <-stopping:
				return
			default:
			}
			n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil || n < 16 {
				continue // the timeout: look at stopping again
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
					ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
					if len(w.stamps) == 0 {
						close(w.first)
					}
					w.stamps = append(w.stamps, stamp{id: binary.NativeEndian.Uint32(buf) & unix.CAN_EFF_MASK, at: time.Unix(ts.Unix())})
				}
			}
		}
	}()
	w.stopFn = func() { close(stopping) }
	return w
}

// stop ends the witness and returns what it recorded.
func (w *witness) stop() []stamp {
	w.stopFn()
	<-w.done
	return w.stamps
}

// screen is a terminal's output as it arrives, read from a pty.
type screen struct {
	mu   sync.Mutex
	buf  []byte
	more chan struct{} // a token after each read
	done chan struct{} // closed at EOF
	seen int           // where the last awaited text ended
}

func readScreen(f *os.File) *screen {
	s := &screen{more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			s.mu.Lock()
			s.buf = append(s.buf, b[:n]...)
			s.mu.Unlock()
			select {
			case s.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// await waits for text to appear after what the last await saw.
func (s *screen) await(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		i := bytes.Index(s.buf[s.seen:], []byte(text))
		if i >= 0 {
			s.seen += i + len(text)
		}
		tail := string(s.buf[max(0, len(s.buf)-2000):])
		s.mu.Unlock()
		if i >= 0 {
			return
		}
		select {
		case <-s.more:
		case <-s.done:
			t.Fatalf("terminal closed before %q; last output:\n%s", text, tail)
		case <-deadline:
			t.Fatalf("no %q on the terminal in %s; last output:\n%s", text, wait, tail)
		}
	}
}

// top on a terminal: the container's attachment with its bus, marked gone
// when the container stops, s changes the order, q quits with exit 0 and
// gives the terminal back (the alternate screen left, the cursor shown).
func TestTopScreen(t *testing.T) {
	kerneltest.VCAN(t, "ktopbus", 16)
	c := env(t)
	ct := c.Run(t, ns, "top-screen", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=ktopbus:can0"}, Hooks: hooks(t)})
	ct.WaitOutput(t, "ready", wait)

	cmd := exec.Command(kerneltest.Binary(t), "top", "--interval", "200ms")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); tty.Close() })
	s := readScreen(tty)
	s.await(t, "\x1b[?1049h") // the alternate screen
	s.await(t, "sort rate")
	s.await(t, "ktopbus")
	s.await(t, ct.ID())

	ct.Stop(t)
	s.await(t, "(gone)")
	if _, err := tty.Write([]byte("s")); err != nil {
		t.Fatal(err)
	}
	s.await(t, "sort name")
	if _, err := tty.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("top after q: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("top did not quit on q")
	}
	s.await(t, "\x1b[?25h\x1b[?1049l")
	if strings.Contains(string(s.buf[s.seen:]), "kanto-can top") {
		t.Error("top drew after it gave the terminal back")
	}
}
