package kerneltest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MTUs of CAN interfaces: what the bus carries.
const (
	MTUClassic = unix.CAN_MTU // 16: Classic CAN only
	MTUFD      = 72           // CANFD_MTU: CAN FD (and classic)
)

// KvaserBitrate is the bitrate [Kvaser] configures.
const KvaserBitrate = 500000

// routeHandle opens a netlink handle in the calling thread's network
// namespace. Only NETLINK_ROUTE: the library's default set also opens XFRM
// and netfilter sockets, which a minimal kernel may not support.
func routeHandle(tb testing.TB) *netlink.Handle {
	tb.Helper()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatalf("netlink handle: %v", err)
	}
	return h
}

// VCAN creates a virtual CAN interface with the given MTU ([MTUClassic] or
// [MTUFD]), sets it up, and deletes it at cleanup. It returns the ifindex.
// It creates the interface in the calling thread's network namespace: call it
// inside [NS.Do] to create it in another one.
func VCAN(tb testing.TB, name string, mtu int) int {
	tb.Helper()
	RequireModules(tb, "vcan")
	if mtu != MTUClassic && mtu != MTUFD {
		tb.Fatalf("VCAN %s: mtu %d, want %d (classic) or %d (FD)", name, mtu, MTUClassic, MTUFD)
	}
	// The handle stays bound to this namespace, so cleanup deletes the link
	// in the right one whatever thread it runs on.
	h := routeHandle(tb)
	link := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: "vcan"}
	if err := h.LinkAdd(link); err != nil {
		h.Close()
		tb.Fatalf("create vcan %s: %v", name, err)
	}
	tb.Cleanup(func() {
		defer h.Close()
		if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) {
				tb.Errorf("delete vcan %s: %v", name, err)
			}
		}
	})
	l, err := h.LinkByName(name)
	if err != nil {
		tb.Fatalf("vcan %s: %v", name, err)
	}
	// vcan only accepts 16 or 72, and only while down.
	if err := h.LinkSetMTU(l, mtu); err != nil {
		tb.Fatalf("vcan %s: set mtu %d: %v", name, mtu, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		tb.Fatalf("vcan %s: set up: %v", name, err)
	}
	return l.Attrs().Index
}

// Ifindex returns the ifindex of an interface in the calling thread's network
// namespace (use inside [NS.Do] for another one).
func Ifindex(tb testing.TB, name string) int {
	tb.Helper()
	h := routeHandle(tb)
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		tb.Fatalf("interface %s: %v", name, err)
	}
	return l.Attrs().Index
}

// Kvaser brings up the two emulated Kvaser PCI controllers of the test VM
// (SJA1000, Classic CAN only) at [KvaserBitrate] and sets them down at
// cleanup. They sit on one emulated CAN bus: a frame sent on one arrives on
// the other through the emulated hardware. It returns their names: bus is
// meant for the system under test, ecu for the test playing a device on the
// bus. They exist only in the guest's initial network namespace.
//
// Emulation limits (QEMU's SJA1000 model): Classic CAN only, no error frames,
// no bus timing, and a remote frame (RTR) with a non-zero DLC puts the
// receiving controller's RX FIFO out of step: every later frame it receives
// is garbage until the VM reboots. [Socket.Send] refuses such frames on CAN
// controllers; do not send them with cansend either. RTR with DLC 0 is fine.
// Kvaser checks the emulated bus with one frame each way before returning:
// call it before attaching anything to the bus.
func Kvaser(tb testing.TB) (bus, ecu string) {
	tb.Helper()
	RequireModules(tb, "kvaser_pci")
	bus, ecu = "can0", "can1"
	h := routeHandle(tb)
	tb.Cleanup(func() { h.Close() })
	for _, name := range []string{bus, ecu} {
		l, err := h.LinkByName(name)
		if err != nil {
			tb.Fatalf("emulated CAN controller %s: %v (boot the VM with --kvaser 2 or more)", name, err)
		}
		if l.Type() != "can" {
			tb.Fatalf("%s is a %q link, not an emulated CAN controller", name, l.Type())
		}
		// The bitrate can only change while down, and must be set before up.
		if err := h.LinkSetDown(l); err != nil {
			tb.Fatalf("%s: set down: %v", name, err)
		}
		// vishvananda/netlink cannot set IFLA_CAN_BITTIMING: use ip (test-only).
		MustRun(tb, "ip", "link", "set", name, "type", "can", "bitrate", fmt.Sprint(KvaserBitrate))
		if err := h.LinkSetUp(l); err != nil {
			tb.Fatalf("%s: set up: %v", name, err)
		}
		tb.Cleanup(func() {
			// By name: a test may have re-bound the controller's PCI
			// device, which gives it a new ifindex.
			l, err := h.LinkByName(name)
			if err == nil {
				err = h.LinkSetDown(l)
			}
			if err != nil {
				tb.Errorf("%s: set down: %v", name, err)
			}
		})
	}
	checkEmulatedBus(tb, bus, ecu)
	return bus, ecu
}

// checkEmulatedBus sends one frame each way and fails clearly if it does not
// arrive intact, so that a broken emulation is not mistaken for a failure of
// the code under test. Its sockets are closed before returning: tests never
// see these frames.
func checkEmulatedBus(tb testing.TB, bus, ecu string) {
	tb.Helper()
	for _, dir := range [][2]string{{ecu, bus}, {bus, ecu}} {
		tx, rx := Open(tb, nil, dir[0]), Open(tb, nil, dir[1])
		probe := Frame{ID: 0x7A5, Data: []byte{0x6B, 0x74, 0x5A}}
		tx.Send(tb, probe)
		got, err := rx.Recv(5 * time.Second)
		if err != nil || !got.Equal(probe) {
			tb.Fatalf("the emulated CAN bus is broken: sent %s on %s, got %s on %s (%v). "+
				"An earlier remote frame with a DLC in this VM boot corrupts QEMU's SJA1000 model",
				probe, dir[0], got, dir[1], err)
		}
		tx.Close()
		rx.Close()
	}
}

// AwaitLinkGone waits, on link notifications rather than a sleep, until
// the host's link name is deleted (a namespace's teardown deletes its
// links asynchronously); it fails the test after timeout.
func AwaitLinkGone(tb testing.TB, name string, timeout time.Duration) {
	tb.Helper()
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		tb.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err != nil {
		return // gone already
	}
	deadline := time.After(timeout)
	for {
		select {
		case u := <-updates:
			if u.Header.Type == unix.RTM_DELLINK && u.Attrs().Name == name {
				return
			}
		case <-deadline:
			tb.Fatalf("link %s still there %v later", name, timeout)
		}
	}
}
