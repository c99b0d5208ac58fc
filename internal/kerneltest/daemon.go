package kerneltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/record"
)

// Daemon is a kanto-can-daemon started by a test, with debug logs.
type Daemon struct {
	cmd *exec.Cmd
	// Log has every line of its log, Exited after the last.
	Log *Lines
	// Wait bounds AwaitLog.
	Wait time.Duration
	next int // the first line AwaitLog has not read
}

// StartDaemon runs `kanto-can daemon` (which runs kanto-can-daemon) with
// args until the test ends, and returns once it has done its first
// reconcile and watches link events. Without a --metrics-address in args it
// serves none: tests must not depend on a fixed port being free.
func StartDaemon(tb testing.TB, wait time.Duration, args ...string) *Daemon {
	tb.Helper()
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--metrics-address") }) {
		args = append(args, "--metrics-address=")
	}
	d := &Daemon{
		cmd:  exec.Command(Binary(tb), append([]string{"daemon", "--log-level=debug"}, args...)...),
		Log:  NewLines(),
		Wait: wait,
	}
	tb.Cleanup(func() {
		if d.cmd.Process != nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	StartLogged(tb, d.cmd, d.Log, wait, func(l string) bool { return strings.Contains(l, "msg=ready") })
	if slices.Contains(args, "--ditto") {
		// What it remembers publishing is the test's: another test's
		// daemon would delete those features again on its hub.
		tb.Cleanup(func() { os.Remove(filepath.Join(record.DefaultDir, record.DittoMemory)) })
	}
	d.AwaitLog(tb, "msg=ready")
	return d
}

// AwaitLogEver is AwaitLog, but a line read already counts too.
func (d *Daemon) AwaitLogEver(tb testing.TB, want ...string) string {
	tb.Helper()
	for _, l := range d.Log.Slice(0, d.next) {
		if ContainsAll(l, want...) {
			return l
		}
	}
	return d.AwaitLog(tb, want...)
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Kill9 kills the daemon with SIGKILL: no clean-up of any kind runs.
func (d *Daemon) Kill9(tb testing.TB) {
	tb.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	d.cmd.Wait()
}

// AwaitLog reads the daemon's log on from where it last stopped until a
// line contains every one of want, and returns that line. Lines read on
// the way are logged.
func (d *Daemon) AwaitLog(tb testing.TB, want ...string) string {
	tb.Helper()
	line, i := d.Log.AwaitIndex(tb, d.next, d.Wait, func(l string) bool { return l == Exited || ContainsAll(l, want...) })
	for _, l := range d.Log.Slice(d.next, i+1) {
		if l != Exited {
			tb.Log("daemon: " + l)
		}
	}
	d.next = i + 1
	if line == Exited {
		tb.Fatalf("the daemon exited before logging %q", want)
	}
	return line
}

// ContainsAll reports whether s contains every one of subs: a log line
// that says all of what a test waits for.
func ContainsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
