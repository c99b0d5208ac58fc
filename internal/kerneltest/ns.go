package kerneltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where [NewNS] pins its namespaces, like ip netns does, so that
// ip -n NAME and other tools can find them.
const NetnsDir = "/run/netns"

var nsSeq atomic.Uint64

// NS is a network namespace made for one test, such as a container's.
// A nil *NS stands for the test's own namespace in [Open], [Candump],
// [NS.Command] and [NS.Unprivileged].
type NS struct {
	name    string
	path    string
	deleted bool
}

// NewNS creates a fresh network namespace (only loopback, down), pinned by a
// bind mount under [NetnsDir]. At cleanup the pin is removed: the namespace
// then really goes away as soon as nothing else holds it (a process inside,
// an open socket or namespace file descriptor).
func NewNS(tb testing.TB) *NS {
	tb.Helper()
	Require(tb)
	name := fmt.Sprintf("kt-%d-%d", os.Getpid(), nsSeq.Add(1))
	path := filepath.Join(NetnsDir, name)
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		tb.Fatalf("netns dir: %v", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		tb.Fatalf("netns pin file: %v", err)
	}
	f.Close()

	// Unshare on a locked thread, pin the new namespace, and move the
	// thread back: no thread of the test stays in the new namespace (the
	// runtime parks rather than ends a locked main thread, which would keep
	// the namespace alive). If moving back fails the thread stays locked and
	// Go discards it with the goroutine.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		mountErr := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("return to the original namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount: %w", mountErr)
		}
		errc <- mountErr
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		tb.Fatalf("new netns %s: %v", name, err)
	}
	ns := &NS{name: name, path: path}
	tb.Cleanup(func() {
		if !ns.deleted {
			ns.Delete(tb)
		}
	})
	return ns
}

// ProcessNS is the network namespace of a running process, such as a
// container's init, for [Open], [Candump] and [NS.Command]: a test can use
// a container's interface from outside, the way a process inside would. It
// pins nothing (and [NS.Delete] must not be called): the namespace lives as
// long as the process. A socket opened in it keeps it alive until closed.
func ProcessNS(pid int) *NS {
	return &NS{name: fmt.Sprintf("pid-%d", pid), path: fmt.Sprintf("/proc/%d/ns/net", pid), deleted: true}
}

// Delete removes the pin now, as `ip netns del` would: the namespace goes
// away once nothing else holds it (the kernel tears it down asynchronously).
func (n *NS) Delete(tb testing.TB) {
	tb.Helper()
	n.deleted = true
	if err := unix.Unmount(n.path, unix.MNT_DETACH); err != nil {
		tb.Errorf("unpin netns %s: %v", n.name, err)
	}
	if err := os.Remove(n.path); err != nil {
		tb.Errorf("remove %s: %v", n.path, err)
	}
}

// Name is the namespace's name under [NetnsDir] (ip -n NAME ...).
func (n *NS) Name() string { return n.name }

// Path is the namespace's pinned file, usable with setns, nsenter --net=PATH,
// or netlink's IFLA_NET_NS_FD after opening it.
func (n *NS) Path() string { return n.path }

// Open opens the namespace file (for setns or IFLA_NET_NS_FD). The caller
// closes it; while it is open the namespace stays alive.
func (n *NS) Open(tb testing.TB) netns.NsHandle {
	tb.Helper()
	h, err := netns.GetFromPath(n.path)
	if err != nil {
		tb.Fatalf("open netns %s: %v", n.name, err)
	}
	return h
}

// Do runs fn on the calling goroutine, with its OS thread locked and switched
// into the namespace, then switches back. Only fn's own goroutine is inside:
// goroutines it starts run in the original namespace. fn may call tb.Fatal.
// On a nil *NS it just calls fn.
func (n *NS) Do(tb testing.TB, fn func()) {
	tb.Helper()
	if n == nil {
		fn()
		return
	}
	target := n.Open(tb)
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("enter netns %s: %v", n.name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Keep the thread locked: Go discards it when the goroutine
			// ends instead of reusing a thread in the wrong namespace.
			tb.Errorf("return from netns %s: %v", n.name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// Netlink returns a NETLINK_ROUTE handle bound to the namespace, closed at
// cleanup.
func (n *NS) Netlink(tb testing.TB) *netlink.Handle {
	tb.Helper()
	target := n.Open(tb)
	defer target.Close()
	h, err := netlink.NewHandleAt(target, unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatalf("netlink in netns %s: %v", n.name, err)
	}
	tb.Cleanup(h.Close)
	return h
}

// Command prepares a command that runs inside the namespace, as root (via
// nsenter from util-linux). On a nil *NS it runs in the test's namespace.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	if n == nil {
		return exec.Command(name, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=" + n.path, "--", name}, args...)...)
}

// Unprivileged prepares a command that runs inside the namespace like a
// container process that was given nothing: uid and gid 65534 (nobody), no
// supplementary groups, no capabilities at all (permitted, effective,
// inheritable, ambient and bounding sets empty), no_new_privs. Use it to show
// that such a process cannot reconfigure its network interfaces.
func (n *NS) Unprivileged(name string, args ...string) *exec.Cmd {
	drop := []string{
		"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs",
		"--", name,
	}
	return n.Command(drop[0], append(drop[1:], args...)...)
}
