//go:build kernel

package e2e

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/nl"
)

// kc runs the kanto-can binary and returns its output and exit code.
func kc(t *testing.T, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	return kerneltest.Run(t, kerneltest.Binary(t), args...)
}

// mustKC runs kanto-can and fails the test unless it succeeds.
func mustKC(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := kc(t, args...)
	if code != 0 {
		t.Fatalf("kanto-can %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// failKC runs kanto-can, expects a non-zero exit and a one-line error that
// contains want.
func failKC(t *testing.T, want string, args ...string) {
	t.Helper()
	_, errOut, code := kc(t, args...)
	if code == 0 {
		t.Fatalf("kanto-can %s: succeeded, want an error containing %q", strings.Join(args, " "), want)
	}
	msg := strings.TrimRight(errOut, "\n")
	if strings.Contains(msg, "\n") {
		t.Errorf("kanto-can %s: error spans several lines:\n%s", strings.Join(args, " "), msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("kanto-can %s: error %q does not contain %q", strings.Join(args, " "), msg, want)
	}
}

// snapshot is the kernel state a test cares about: every link of the host
// (and of ns, if given) and every can-gw rule, without counters.
func snapshot(t *testing.T, ns *kerneltest.NS) string {
	t.Helper()
	var lines []string
	links := func(c *canlink.Conn, where string) {
		ls, err := c.Links()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			lines = append(lines, fmt.Sprintf("%s link %d %s kind=%s mtu=%d up=%v alias=%q", where, l.Index, l.Name, l.Kind, l.MTU, l.Up, l.Alias))
		}
	}
	links(linkConn(t, nil), "host")
	if ns != nil {
		links(linkConn(t, ns), "ns")
	}
	gw := dialGW(t)
	rules, err := gw.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		filter := "all"
		if r.Filter != nil {
			filter = fmt.Sprintf("%+v", *r.Filter)
		}
		lines = append(lines, fmt.Sprintf("rule %d>%d flags=%s filter=%s hops=%d uid=%d mods=%v", r.Src, r.Dst, r.Flags, filter, r.HopLimit, r.UID, r.Mods))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func openNS(t *testing.T, ns *kerneltest.NS) *os.File {
	t.Helper()
	return openPath(t, ns.Path())
}

// openPath opens a network namespace file, closed at cleanup.
func openPath(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func dialGW(t *testing.T) *cangw.Conn {
	t.Helper()
	gw, err := cangw.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw
}

func requireNothingOfOurs(t *testing.T) {
	t.Helper()
	leftover.RequireNone(t, record.DefaultDir)
}

// linkConn opens a route netlink socket in ns (nil: the host's), closed at
// cleanup.
func linkConn(t *testing.T, ns *kerneltest.NS) *canlink.Conn {
	t.Helper()
	if ns != nil {
		return dialIn(t, openNS(t, ns))
	}
	c, err := canlink.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialIn opens a route netlink socket in the namespace of f, closed at
// cleanup.
func dialIn(t *testing.T, f *os.File) *canlink.Conn {
	t.Helper()
	c, err := canlink.DialConfig(nl.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func linkIndex(t *testing.T, ns *kerneltest.NS, name string) (idx, mtu int) {
	t.Helper()
	l, err := linkConn(t, ns).LinkByName(name)
	if err != nil {
		t.Fatalf("interface %s: %v", name, err)
	}
	return l.Index, l.MTU
}

// onOneCPU runs fn on a thread pinned to one CPU, so frames it sends are
// queued to one CPU's backlog and keep their order end to end: the basis of
// the marker pattern (a frame that should have been dropped would arrive
// before the marker sent after it).
func onOneCPU(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatalf("sched_setaffinity: %v", err)
	}
	defer unix.SchedSetaffinity(0, &old)
	fn()
}

func frame(id uint32, data ...byte) kerneltest.Frame {
	return kerneltest.Frame{ID: id, Data: data}
}

func fdFrame(id uint32, n int) kerneltest.Frame {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(i)
	}
	return kerneltest.Frame{ID: id, FD: true, Data: d}
}
