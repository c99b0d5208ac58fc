//go:build kernel

package kanto

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/sample"
)

// topOnce runs kanto-can top --once -o json over interval.
func topOnce(t *testing.T, interval string) sample.View {
	t.Helper()
	out, errOut, code := kerneltest.Run(t, kerneltest.Binary(t), "top", "--once", "-o", "json", "--interval", interval)
	if code != 0 {
		t.Fatalf("kanto-can top --once: exit %d: %s", code, errOut)
	}
	var v sample.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("top -o json: %v: %s", err, out)
	}
	return v
}

func within(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*want }

// A container on the emulated Kvaser bus echoes every frame the ECU sends
// (cangen, a known number at a steady rate): top's rates over a window in
// the middle of the run are the run's rate within 10%, each way, on the
// attachment and on the bus, and the bus load is what those frames take of
// its bitrate.
func TestTopRatesFromCangen(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	c := env(t)
	ct := c.Run(t, ns, "top-rates", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=" + bus}, Hooks: hooks(t)})
	ct.WaitOutput(t, "ready", wait)

	const frames, gapMs, dataLen = 1000, 10, 8
	onBus := kerneltest.Open(t, nil, bus)
	cangen := exec.Command("cangen", ecuIf, "-g", itoa(gapMs), "-n", itoa(frames), "-I", "123", "-L", itoa(dataLen), "-D", "i")
	var cangenErr bytes.Buffer
	cangen.Stderr = &cangenErr
	if err := cangen.Start(); err != nil {
		t.Fatal(err)
	}
	// The run starts with its first frame on the bus; top's window, 4 s,
	// lies inside the run (10 s or more).
	if _, err := onBus.Recv(wait); err != nil {
		t.Fatalf("cangen's first frame: %v", err)
	}
	start := time.Now()
	onBus.Close()
	v := topOnce(t, "4s")
	if err := cangen.Wait(); err != nil {
		t.Fatalf("cangen: %v: %s", err, cangenErr.String())
	}
	elapsed := time.Since(start).Seconds()
	rate := (frames - 1) / elapsed
	t.Logf("cangen: %d frames in %.2f s: %.1f frames/s; top: %+v", frames, elapsed, rate, v)
	if elapsed < 6 {
		t.Fatalf("cangen ran %.1f s: too short for the window", elapsed)
	}

	var a *sample.Attachment
	for i := range v.Attachments {
		if v.Attachments[i].HostBus == bus && !v.Attachments[i].Gone {
			a = &v.Attachments[i]
		}
	}
	if a == nil {
		t.Fatalf("no attachment on %s in %+v", bus, v.Attachments)
	}
	if !within(a.RxPerSecond, rate, 0.1) || !within(a.TxPerSecond, rate, 0.1) {
		t.Errorf("attachment: %.1f rx/s, %.1f tx/s; want %.1f ±10%% each", a.RxPerSecond, a.TxPerSecond, rate)
	}
	if a.Direction != "both" || a.RxFrames == 0 || a.RxFrames > frames {
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
	if !within(b.RxPerSecond, rate, 0.1) || !within(b.TxPerSecond, rate, 0.1) {
		t.Errorf("bus: %.1f rx/s, %.1f tx/s; want %.1f ±10%% each", b.RxPerSecond, b.TxPerSecond, rate)
	}
	wantLoad := 2 * rate * (47 + 8*dataLen) / kerneltest.KvaserBitrate * 100
	if !within(*b.Load, wantLoad, 0.1) {
		t.Errorf("load %.2f%%, want %.2f%% ±10%%", *b.Load, wantLoad)
	}
	if b.Errors == nil || b.Errors.TxErrorCounter == nil || b.Counters == nil {
		t.Errorf("bus counters %+v, errors %+v", b.Counters, b.Errors)
	}
	ct.Stop(t)
	requireNothingOfOurs(t)
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
