package kerneltest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Dump is a running candump (can-utils), an independent witness of what
// crossed an interface.
type Dump struct {
	ifname string
	cmd    *exec.Cmd
	stderr syncBuffer

	mu     sync.Mutex
	frames []string
	change chan struct{} // closed and replaced on every new line / at EOF
	eof    bool
	done   chan struct{} // closed when the output is fully read

	stopOnce sync.Once
}

// Candump starts `candump -L ifname` inside ns (nil: the test's namespace)
// and returns once candump is listening, so no frame sent afterwards can be
// missed. It is stopped at cleanup.
//
// Readiness is taken from the kernel: candump's raw socket appears as a new
// receiver for ifname in /proc/net/can/rcvlist_all of its namespace. Do not
// open other sockets on the same interface concurrently with this call.
func Candump(tb testing.TB, ns *NS, ifname string) *Dump {
	tb.Helper()
	Require(tb)
	var before int
	ns.Do(tb, func() {
		// thread-self: /proc/self/net would show the main thread's namespace.
		before = countReceivers(tb, "/proc/thread-self/net/can/rcvlist_all", ifname)
	})

	d := &Dump{ifname: ifname, change: make(chan struct{}), done: make(chan struct{})}
	d.cmd = ns.Command("candump", "-L", ifname)
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("candump: %v", err)
	}
	if err := d.cmd.Start(); err != nil {
		tb.Fatalf("start candump on %s: %v", ifname, err)
	}
	go d.read(out)
	tb.Cleanup(func() { d.Stop() })

	// nsenter execs candump in the same process: its /proc/PID/net is the
	// target namespace once it has switched.
	var nsIno string
	if ns != nil {
		if fi, err := os.Stat(ns.Path()); err == nil {
			nsIno = fmt.Sprint(fi.Sys().(*syscall.Stat_t).Ino)
		}
	}
	pid := d.cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if d.exited() {
			tb.Fatalf("candump on %s exited early: %s", ifname, d.stderr.String())
		}
		if nsIno == "" || inNetns(pid, nsIno) {
			if countReceivers(nil, fmt.Sprintf("/proc/%d/net/can/rcvlist_all", pid), ifname) > before {
				return d
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("candump on %s not listening after 10s", ifname)
		}
		select {
		case <-tick.C:
		case <-d.done:
		}
	}
}

// inNetns reports whether process pid is in the namespace with inode ino.
func inNetns(pid int, ino string) bool {
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return err == nil && l == "net:["+ino+"]"
}

// countReceivers counts the CAN receivers registered on ifname in a
// rcvlist_all file (one per raw socket without filters). A nil tb means
// errors count as zero.
func countReceivers(tb testing.TB, path, ifname string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		if tb != nil {
			tb.Fatalf("read %s (is the can module loaded?): %v", path, err)
		}
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ifname {
			n++
		}
	}
	return n
}

func (d *Dump) read(r io.Reader) {
	defer close(d.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// "(1700000000.123456) can0 123#1122": keep the frame only.
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		d.mu.Lock()
		d.frames = append(d.frames, normalizeFD(f[2]))
		close(d.change)
		d.change = make(chan struct{})
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.eof = true
	close(d.change)
	d.change = make(chan struct{})
	d.mu.Unlock()
}

// normalizeFD drops the FDF bit (0x4) from the flags digit of an FD frame
// ("123##5..." becomes "123##1..."): kernels since 6.0 set it on every CAN FD
// frame, older ones never do. Without it lines compare equal to
// [Frame.String] on any kernel.
func normalizeFD(s string) string {
	i := strings.Index(s, "##")
	if i < 0 || len(s) < i+3 {
		return s
	}
	v, err := strconv.ParseUint(s[i+2:i+3], 16, 4)
	if err != nil {
		return s
	}
	return s[:i+2] + strconv.FormatUint(v&^0x4, 16) + s[i+3:]
}

func (d *Dump) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// WaitFor waits up to timeout until candump printed n frames and returns the
// first n, in candump's ID#DATA notation (as [Frame.String]; for CAN FD the
// FDF flag is left out of the flags digit, see normalizeFD).
func (d *Dump) WaitFor(tb testing.TB, n int, timeout time.Duration) []string {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		d.mu.Lock()
		got, eof, ch := append([]string(nil), d.frames...), d.eof, d.change
		d.mu.Unlock()
		if len(got) >= n {
			return got[:n]
		}
		if eof {
			tb.Fatalf("candump on %s ended after %d of %d frames %v: %s", d.ifname, len(got), n, got, d.stderr.String())
		}
		select {
		case <-ch:
		case <-timer.C:
			tb.Fatalf("candump on %s: %d of %d frames after %v: %v", d.ifname, len(got), n, timeout, got)
		}
	}
}

// Stop stops candump and returns every frame it printed. Calling it again
// returns the same frames.
func (d *Dump) Stop() []string {
	d.stopOnce.Do(func() {
		// SIGINT lets candump flush its output.
		_ = d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		_ = d.cmd.Wait()
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.frames...)
}

// syncBuffer is a bytes.Buffer safe for the exec package's copying goroutine
// and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
