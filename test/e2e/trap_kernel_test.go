//go:build kernel

package e2e

import (
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// The ifindex-collision trap (kernel-can facts): vxcan keeps the sender's
// ifindex, an index in the container's namespace; the gateway drops a frame
// whose incoming index equals the destination's. When the container's
// interface has the same index as the host bus, container -> bus frames
// vanish without a counter moving, unless the rule has IIF_TX_OK.
//
// The test makes the collision happen, shows kanto-can's attachment
// transmits anyway, then swaps kanto-can's rule for the same rule without
// IIF_TX_OK and shows the frame is lost: without the fix the test fails.
func TestIfindexCollision(t *testing.T) {
	kerneltest.Require(t)
	busIdx := kerneltest.VCAN(t, "trapbus", 16)
	ns := kerneltest.NewNS(t)
	// Fill the namespace so that the next interface made there (the
	// container's can0) gets the bus's index: lo is 1, then 2, 3, ...
	nl := ns.Netlink(t)
	for i := 2; i < busIdx; i++ {
		fill := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("fill%d", i)}, LinkType: "vcan"}
		if err := nl.LinkAdd(fill); err != nil {
			t.Fatalf("fill the namespace: %v", err)
		}
	}
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "trapbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	if idx, _ := linkIndex(t, ns, "can0"); idx != busIdx {
		t.Fatalf("precondition: container can0 has index %d, bus %d: no collision to test", idx, busIdx)
	}
	host := kerneltest.Open(t, nil, "trapbus")
	inside := kerneltest.Open(t, ns, "can0")

	// With kanto-can's rule the container transmits.
	inside.Send(t, frame(0x101, 1))
	host.Expect(t, []kerneltest.Frame{frame(0x101, 1)}, wait)

	// Now without IIF_TX_OK. A witness rule (host end -> witness vcan)
	// tells when the gateway has processed the frame.
	a := lsOne(t, "trapbus")
	witnessIdx := kerneltest.VCAN(t, "trapwit", 16)
	gw := dialGW(t)
	ourTx := cangw.Rule{Src: a.HostEndIndex, Dst: busIdx, Flags: cangw.FlagEcho | cangw.FlagIIFTXOK}
	broken := cangw.Rule{Src: a.HostEndIndex, Dst: busIdx, Flags: cangw.FlagEcho}
	witness := cangw.Rule{Src: a.HostEndIndex, Dst: witnessIdx, Flags: cangw.FlagEcho} // vcan delivers only echoed frames
	for _, step := range []func() error{func() error { return gw.Add(witness) }, func() error { return gw.Delete(ourTx) }, func() error { return gw.Add(broken) }} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	w := kerneltest.Open(t, nil, "trapwit")
	onOneCPU(t, func() {
		inside.Send(t, frame(0x102, 2))
		w.Expect(t, []kerneltest.Frame{frame(0x102, 2)}, wait)
		// Restore kanto-can's rule and send a marker along the same path.
		for _, step := range []func() error{func() error { return gw.Delete(broken) }, func() error { return gw.Add(ourTx) }, func() error { return gw.Delete(witness) }} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		inside.Send(t, frame(0x103, 3))
	})
	// 0x102 went through the rule without IIF_TX_OK: it must be missing.
	host.ExpectOnlyUntil(t, nil, frame(0x103, 3), wait)
}
