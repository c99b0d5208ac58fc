//go:build kernel

package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

const wait = 10 * time.Second

// The main job: a frame from the ECU (can1, emulated hardware) reaches the
// container, and a frame from the container reaches the ECU.
func TestECUBothWays(t *testing.T) {
	kerneltest.Require(t)
	bus, ecu := kerneltest.Kvaser(t)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", bus)
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })

	inside := kerneltest.Open(t, ns, bus)
	ecuSock := kerneltest.Open(t, nil, ecu)
	insideDump := kerneltest.Candump(t, ns, bus)
	ecuDump := kerneltest.Candump(t, nil, ecu)

	down := []kerneltest.Frame{frame(0x123, 1, 2, 3), frame(0x7E8, 0x10, 0x20), {ID: 0x18DAF110, Extended: true, Data: []byte{0xAA}}}
	for _, f := range down {
		ecuSock.Send(t, f)
	}
	inside.Expect(t, down, wait)

	up := []kerneltest.Frame{frame(0x7DF, 2, 1, 0), {ID: 0x18DB33F1, Extended: true, Data: []byte{1}}}
	for _, f := range up {
		inside.Send(t, f)
	}
	ecuSock.Expect(t, up, wait)

	// can-utils saw the same: candump in the container prints what came
	// from the ECU and what the container sent; candump on the ECU's
	// interface what the ECU sent and what came from the container.
	all := append(append([]kerneltest.Frame{}, down...), up...)
	for name, d := range map[string]*kerneltest.Dump{"container": insideDump, "ecu": ecuDump} {
		got := d.WaitFor(t, len(all), wait)
		for i, f := range all {
			if got[i] != f.String() {
				t.Errorf("candump on %s: frame %d = %s, want %s (all: %v)", name, i, got[i], f, got)
			}
		}
	}
}

// On an FD bus (vcan, MTU 72) classic and FD frames pass both ways.
func TestFDBusCarriesClassicAndFD(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "fdbus", 72)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "fdbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	if _, mtu := linkIndex(t, ns, "can0"); mtu != 72 {
		t.Fatalf("inside MTU %d, want 72", mtu)
	}
	host := kerneltest.Open(t, nil, "fdbus")
	inside := kerneltest.Open(t, ns, "can0")

	down := []kerneltest.Frame{frame(0x100, 1), fdFrame(0x101, 64), frame(0x102), fdFrame(0x103, 12)}
	for _, f := range down {
		host.Send(t, f)
	}
	inside.Expect(t, down, wait)
	up := []kerneltest.Frame{fdFrame(0x200, 48), frame(0x201, 8, 7, 6, 5, 4, 3, 2, 1)}
	for _, f := range up {
		inside.Send(t, f)
	}
	host.Expect(t, up, wait)
}

// fd=off on an FD bus forwards classic frames only.
func TestFDOffForwardsClassicOnly(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "fdbus2", 72)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "fdbus2:can0,fd=off")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	if _, mtu := linkIndex(t, ns, "can0"); mtu != 16 {
		t.Fatalf("inside MTU %d, want 16", mtu)
	}
	host := kerneltest.Open(t, nil, "fdbus2")
	inside := kerneltest.Open(t, ns, "can0")
	onOneCPU(t, func() {
		host.Send(t, fdFrame(0x111, 16))
		host.Send(t, frame(0x112, 1))
		host.Send(t, fdFrame(0x113, 64))
		host.Send(t, frame(0x114, 0xFF))
	})
	inside.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x112, 1)}, frame(0x114, 0xFF), wait)
}

// On a classic bus (MTU 16) the container's interface is classic too and
// only classic rules exist.
func TestClassicBusGetsClassicOnly(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "clbus", 16)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "clbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	if _, mtu := linkIndex(t, ns, "can0"); mtu != 16 {
		t.Fatalf("inside MTU %d, want 16", mtu)
	}
	a := lsOne(t, "clbus")
	if len(a.Rules) != 2 {
		t.Fatalf("rules %+v, want one rx and one tx", a.Rules)
	}
	for _, r := range a.Rules {
		if r.FD {
			t.Errorf("FD rule on a classic bus: %+v", r)
		}
	}
	host := kerneltest.Open(t, nil, "clbus")
	inside := kerneltest.Open(t, ns, "can0")
	host.Send(t, frame(0x321, 1, 2))
	inside.Expect(t, []kerneltest.Frame{frame(0x321, 1, 2)}, wait)
	inside.Send(t, frame(0x322, 3))
	host.Expect(t, []kerneltest.Frame{frame(0x322, 3)}, wait)
	// fd=on cannot be had on a classic bus.
	ns2 := kerneltest.NewNS(t)
	failKC(t, "classic CAN only", "attach", "--netns", ns2.Path(), "--bus", "clbus,fd=on")
}

// lsAll returns `ls -o json`.
func lsAll(t *testing.T) []attach.Attachment {
	t.Helper()
	out := mustKC(t, "ls", "-o", "json")
	schematest.Validate(t, "docs/cli/ls.schema.json", []byte(out))
	var list []attach.Attachment
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

// lsOne returns the single attachment of a host bus from `ls -o json`.
func lsOne(t *testing.T, bus string) attach.Attachment {
	t.Helper()
	list := lsAll(t)
	var found []attach.Attachment
	for _, a := range list {
		if a.HostBus == bus {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		t.Fatalf("ls: %d attachments of %s, want 1: %+v", len(found), bus, list)
	}
	return found[0]
}

// Receive and transmit allow-lists hold: a filtered id never arrives.
func TestFilters(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "filtbus", 72)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "filtbus:can0,rx=7DF,7E8,18DAF110,tx=100-10F")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	host := kerneltest.Open(t, nil, "filtbus")
	inside := kerneltest.Open(t, ns, "can0")

	ext := func(id uint32) kerneltest.Frame { return kerneltest.Frame{ID: id, Extended: true, Data: []byte{1}} }
	onOneCPU(t, func() {
		for _, f := range []kerneltest.Frame{frame(0x7DF, 1), frame(0x123, 1), frame(0x7E0, 1), frame(0x7E8, 1),
			ext(0x18DAF110), ext(0x18DAF111), ext(0x7DF), fdFrame(0x7DF, 20), fdFrame(0x7E9, 20), frame(0x7E8, 0xFF)} {
			host.Send(t, f)
		}
	})
	inside.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x7DF, 1), frame(0x7E8, 1), ext(0x18DAF110), fdFrame(0x7DF, 20)}, frame(0x7E8, 0xFF), wait)

	onOneCPU(t, func() {
		for _, f := range []kerneltest.Frame{frame(0x0FF, 1), frame(0x100, 1), frame(0x110, 1), frame(0x10F, 1),
			ext(0x100), fdFrame(0x105, 8), frame(0x200, 1), frame(0x10E, 0xFF)} {
			inside.Send(t, f)
		}
	})
	host.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x100, 1), frame(0x10F, 1), fdFrame(0x105, 8)}, frame(0x10E, 0xFF), wait)
}

// dir=rx: the container's frames never reach the bus.
func TestRxOnlyNeverTransmits(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "rxbus", 72)
	witnessIdx := kerneltest.VCAN(t, "rxwitness", 72)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "rxbus:can0,dir=rx")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	a := lsOne(t, "rxbus")
	for _, r := range a.Rules {
		if r.Direction != "rx" {
			t.Fatalf("dir=rx attachment has a %s rule: %+v", r.Direction, a.Rules)
		}
	}
	// A witness rule of the test's own (host end -> rxwitness) proves the
	// container's frame reached the gateway; a marker sent on the bus
	// afterwards, on the same CPU, arrives after anything the gateway
	// could have put on the bus for that frame.
	gw := dialGW(t)
	witness := cangw.Rule{Src: a.HostEndIndex, Dst: witnessIdx, Flags: cangw.FlagEcho} // vcan delivers only echoed frames
	if err := gw.Add(witness); err != nil {
		t.Fatal(err)
	}
	defer gw.Delete(witness)
	host := kerneltest.Open(t, nil, "rxbus")
	probe := kerneltest.Open(t, nil, "rxbus") // sees what host and gateway put on the bus
	w := kerneltest.Open(t, nil, "rxwitness")
	inside := kerneltest.Open(t, ns, "can0")
	onOneCPU(t, func() {
		inside.Send(t, frame(0x555, 5))
		w.Expect(t, []kerneltest.Frame{frame(0x555, 5)}, wait)
		host.Send(t, frame(0x556, 6)) // marker, host -> bus
	})
	probe.ExpectOnlyUntil(t, nil, frame(0x556, 6), wait)
	inside.Expect(t, []kerneltest.Frame{frame(0x556, 6)}, wait) // receiving still works
}
