//go:build kernel

package kerneltest_test

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

const wait = 5 * time.Second

// Two sockets on one vcan see each other's frames (local loopback), classic
// and FD, and Candump witnesses the same.
func TestVCANLoopback(t *testing.T) {
	kerneltest.Require(t)
	idx := kerneltest.VCAN(t, "ktvcan0", kerneltest.MTUFD)
	if idx <= 0 {
		t.Fatalf("ifindex %d", idx)
	}
	dump := kerneltest.Candump(t, nil, "ktvcan0")
	a := kerneltest.Open(t, nil, "ktvcan0")
	b := kerneltest.Open(t, nil, "ktvcan0")

	frames := []kerneltest.Frame{
		{ID: 0x123, Data: []byte{0x11, 0x22}},
		{ID: 0x12345678, Extended: true, Data: []byte{}},
		{ID: 0x7ff, RTR: true, Data: make([]byte, 2)},
		{ID: 0x456, FD: true, BRS: true, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{ID: 0x1abcdef, Extended: true, FD: true, Data: make([]byte, 64)},
	}
	for _, f := range frames {
		a.Send(t, f)
	}
	b.Expect(t, frames, wait)
	// The sender does not receive its own frames.
	if f, err := a.Recv(100 * time.Millisecond); !errors.Is(err, kerneltest.ErrTimeout) {
		t.Fatalf("sender received %v, %v", f, err)
	}

	want := make([]string, len(frames))
	for i, f := range frames {
		want[i] = f.String()
	}
	if got := dump.WaitFor(t, len(frames), wait); !slices.Equal(got, want) {
		t.Fatalf("candump saw %q, want %q", got, want)
	}

	// Marker pattern: nothing but the wanted frames before the marker.
	marker := kerneltest.Frame{ID: 0x7ee, Data: []byte{0xee}}
	a.Send(t, frames[0])
	a.Send(t, marker)
	b.ExpectOnlyUntil(t, frames[:1], marker, wait)

	// A classic-only vcan refuses FD frames on send.
	kerneltest.VCAN(t, "ktvcan1", kerneltest.MTUClassic)
	c := kerneltest.Open(t, nil, "ktvcan1")
	d := kerneltest.Open(t, nil, "ktvcan1")
	c.Send(t, frames[0])
	d.Expect(t, frames[:1], wait)
}

// A namespace is isolated, Do enters and leaves it, and it really goes away
// at cleanup (a veth end in it disappears with it).
func TestNS(t *testing.T) {
	kerneltest.Require(t)
	hostIno := nsIno(t)
	var veth string
	var nsPath string
	var inner uint64
	t.Run("lifecycle", func(t *testing.T) {
		ns := kerneltest.NewNS(t)
		nsPath = ns.Path()
		if _, err := os.Stat(nsPath); err != nil {
			t.Fatalf("pin: %v", err)
		}
		ns.Do(t, func() {
			inner = nsIno(t)
			if inner == hostIno {
				t.Fatal("Do did not enter the namespace")
			}
			// A vcan made inside exists only there.
			kerneltest.VCAN(t, "ktnsvcan", kerneltest.MTUFD)
		})
		if nsIno(t) != hostIno {
			t.Fatal("Do did not return to the original namespace")
		}
		if _, err := netlink.LinkByName("ktnsvcan"); err == nil {
			t.Fatal("vcan made inside the namespace is visible outside")
		}
		if _, err := ns.Netlink(t).LinkByName("ktnsvcan"); err != nil {
			t.Fatalf("vcan inside the namespace: %v", err)
		}

		// Sockets in the namespace work.
		ns.Do(t, func() { kerneltest.VCAN(t, "ktnsvcan2", kerneltest.MTUClassic) })
		s1 := kerneltest.Open(t, ns, "ktnsvcan2")
		s2 := kerneltest.Open(t, ns, "ktnsvcan2")
		f := kerneltest.Frame{ID: 0x42, Data: []byte{4, 2}}
		s1.Send(t, f)
		s2.Expect(t, []kerneltest.Frame{f}, wait)

		// A process started with Command is inside.
		out, _, code := kerneltest.RunCmd(t, ns.Command("readlink", "/proc/self/ns/net"))
		if code != 0 || !strings.Contains(out, "net:[") || strings.Contains(out, strconv.FormatUint(hostIno, 10)) {
			t.Fatalf("Command ran in %q (exit %d), host is %d", out, code, hostIno)
		}

		// A veth pair with one end in the namespace: the host end goes
		// away when the namespace does.
		veth = "ktveth0"
		peerNS := ns.Open(t)
		defer peerNS.Close()
		la := netlink.NewLinkAttrs()
		la.Name = veth
		v := &netlink.Veth{LinkAttrs: la, PeerName: "ktveth1", PeerNamespace: netlink.NsFd(peerNS)}
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatalf("veth: %v", err)
		}
	})
	if _, err := os.Stat(nsPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin %s still there: %v", nsPath, err)
	}
	// Namespace teardown is asynchronous: await the veth's removal.
	waitLinkGone(t, veth, 20*time.Second)
}

// Frames from can1 reach can0 through QEMU's emulated CAN bus.
func TestKvaser(t *testing.T) {
	kerneltest.Require(t)
	bus, ecu := kerneltest.Kvaser(t)
	dump := kerneltest.Candump(t, nil, bus)
	rx := kerneltest.Open(t, nil, bus)
	tx := kerneltest.Open(t, nil, ecu)
	frames := []kerneltest.Frame{
		{ID: 0x100, Data: []byte{0xde, 0xad, 0xbe, 0xef}},
		{ID: 0x1fffffff, Extended: true, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0x200, RTR: true},
		{ID: 0x000},
		{ID: 0x12345, Extended: true, RTR: true},
		{ID: 0x7ff, Data: []byte{1}},
	}
	for _, f := range frames {
		tx.Send(t, f)
	}
	rx.Expect(t, frames, wait)
	want := make([]string, len(frames))
	for i, f := range frames {
		want[i] = f.String()
	}
	if got := dump.WaitFor(t, len(frames), wait); !slices.Equal(got, want) {
		t.Fatalf("candump on %s saw %q, want %q", bus, got, want)
	}
	// The SJA1000 is Classic CAN only.
	if _, _, code := kerneltest.Run(t, "cansend", ecu, "123##0112233"); code == 0 {
		t.Fatalf("cansend of an FD frame on %s succeeded", ecu)
	}
}

// A process without privileges cannot reconfigure interfaces in its namespace.
func TestUnprivileged(t *testing.T) {
	kerneltest.Require(t)
	ns := kerneltest.NewNS(t)
	if _, errs, code := kerneltest.RunCmd(t, ns.Command("ip", "link", "set", "lo", "up")); code != 0 {
		t.Fatalf("root in the namespace: ip link set lo up: exit %d: %s", code, errs)
	}
	out, _, _ := kerneltest.RunCmd(t, ns.Unprivileged("id", "-u"))
	if strings.TrimSpace(out) != "65534" {
		t.Fatalf("Unprivileged runs as uid %q", out)
	}
	caps, _, _ := kerneltest.RunCmd(t, ns.Unprivileged("grep", "^Cap", "/proc/self/status"))
	for _, line := range strings.Split(strings.TrimSpace(caps), "\n") {
		if f := strings.Fields(line); len(f) != 2 || strings.Trim(f[1], "0") != "" {
			t.Fatalf("Unprivileged has capabilities: %q", line)
		}
	}
	_, errs, code := kerneltest.RunCmd(t, ns.Unprivileged("ip", "link", "set", "lo", "down"))
	if code == 0 {
		t.Fatal("unprivileged ip link set lo down succeeded")
	}
	if !strings.Contains(errs, "Operation not permitted") {
		t.Errorf("unprivileged ip link set lo down: exit %d, stderr %q; want Operation not permitted", code, errs)
	}
	l, err := ns.Netlink(t).LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Flags&unix.IFF_UP == 0 {
		t.Fatal("lo went down anyway")
	}
}

func TestBinary(t *testing.T) {
	kerneltest.Require(t)
	if os.Getenv(kerneltest.EnvBinary) == "" {
		t.Skip("KANTO_CAN_BIN not set")
	}
	kerneltest.Binary(t)
}

func nsIno(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// waitLinkGone waits for the link's removal event (or finds it already gone).
func waitLinkGone(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	// Subscribed first, then checked: the removal cannot slip in between.
	if _, err := netlink.LinkByName(name); err != nil {
		return
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case u := <-updates:
			if u.Header.Type == unix.RTM_DELLINK && u.Attrs().Name == name {
				return
			}
		case <-timer.C:
			t.Fatalf("%s still exists %v after its namespace was released", name, timeout)
		}
	}
}

// RequireModules: a module the kernel has is loaded (and shows in
// /sys/module); one it does not have skips the test, naming the module,
// rather than failing it or letting it pass.
func TestRequireModules(t *testing.T) {
	kerneltest.RequireModules(t, "can-bcm") // a dash, as modprobe allows
	if _, err := os.Stat("/sys/module/can_bcm"); err != nil {
		t.Errorf("after RequireModules(can-bcm): %v", err)
	}
	var sub *testing.T
	var reached bool
	t.Run("missing", func(t *testing.T) {
		sub = t
		kerneltest.RequireModules(t, "can", "kanto_can_no_such_module")
		reached = true
	})
	if !sub.Skipped() || reached {
		t.Errorf("a module the kernel does not have: skipped %v, went on after it %v; want a skip", sub.Skipped(), reached)
	}
}
