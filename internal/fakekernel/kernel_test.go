package fakekernel_test

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/fakekernel"
	"github.com/kanto-can/kanto-can/internal/ratelimit"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/vxcan"
)

func addBus(t *testing.T, k *fakekernel.Kernel, name string, mtu int) fakekernel.Link {
	t.Helper()
	l, err := k.AddLink(fakekernel.Host, fakekernel.Link{Name: name, Kind: "can", MTU: mtu, Up: true})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A pair is made as vxcan.Create makes it: from a socket in the peer's
// namespace, the host end sent back by IFLA_NET_NS_FD, then brought up.
func TestPairAcrossNamespaces(t *testing.T) {
	k := fakekernel.New()
	ns, err := k.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c := k.Dial()
	pairs, links := vxcan.NewConn(c), canlink.NewConn(c)
	end, err := pairs.Create(vxcan.Pair{Name: "kcanend", PeerName: "can0", PeerNS: ns, MTU: canlink.MTUClassic, Alias: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	if end.Kind != "vxcan" || !end.Up || end.MTU != 16 || end.Alias != "mine" || !end.IsCAN() {
		t.Fatalf("host end %+v", end)
	}
	inner, err := k.Dial().DialNetNS(int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	in, err := canlink.NewConn(inner).LinkByName("can0")
	if err != nil {
		t.Fatal(err)
	}
	if !in.Up || in.PeerIndex != end.Index || end.PeerIndex != in.Index || in.MTU != 16 {
		t.Fatalf("inside end %+v, host end %+v", in, end)
	}
	if _, err := links.LinkByName("can0"); !errors.Is(err, canlink.ErrNotFound) {
		t.Fatalf("the inside name is visible on the host: %v", err)
	}

	// Taken names: the host end's, and the inside one in its namespace.
	_, err = pairs.Create(vxcan.Pair{Name: "kcanend", PeerName: "can1", PeerNS: ns})
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("host end name taken: %v", err)
	}
	_, err = pairs.Create(vxcan.Pair{Name: "kcanother", PeerName: "can0", PeerNS: ns})
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("inside name taken: %v", err)
	}
	// A host can0 does not collide with a container's can0.
	addBus(t, k, "can0", 16)
	ns2, err := k.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns2.Close()
	if _, err := pairs.Create(vxcan.Pair{Name: "kcan2", PeerName: "can0", PeerNS: ns2}); err != nil {
		t.Fatalf("can0 in a second namespace: %v", err)
	}

	// Deleting one end deletes both, and the rules naming either.
	gw := cangw.NewConn(k.Dial())
	bus, _ := k.Link(fakekernel.Host, "can0")
	if err := gw.Add(cangw.Rule{Src: bus.Index, Dst: end.Index}); err != nil {
		t.Fatal(err)
	}
	if err := links.Delete(end.Index); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Link(int(ns.Fd()), "can0"); ok {
		t.Fatal("the inside end outlived its peer")
	}
	if rules := k.Rules(fakekernel.Host); len(rules) != 0 {
		t.Fatalf("rules of a deleted link left: %v", rules)
	}
	if err := links.Delete(end.Index); !errors.Is(err, canlink.ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	if err := links.Delete(bus.Index); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("deleting a controller: %v", err)
	}

	// A namespace's end: its pairs go, host ends included.
	k.DeleteNS(ns2)
	if _, ok := k.Link(fakekernel.Host, "kcan2"); ok {
		t.Fatal("a host end outlived its container's namespace")
	}
}

func TestVCAN(t *testing.T) {
	k := fakekernel.New()
	links := canlink.NewConn(k.Dial())
	l, err := links.CreateVCAN("vbus", canlink.MTUFD, "a virtual bus")
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "vcan" || !l.Up || l.MTU != 72 || l.Alias != "a virtual bus" || !l.IsCAN() {
		t.Fatalf("vcan %+v", l)
	}
	if _, err := links.CreateVCAN("vbus", canlink.MTUFD, ""); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("again: %v", err)
	}
	if _, err := links.LinkByIndex(99); !errors.Is(err, canlink.ErrNotFound) {
		t.Fatalf("missing index: %v", err)
	}
	all, err := links.Links()
	if err != nil || len(all) != 2 || all[0].Name != "lo" || all[1].Name != "vbus" {
		t.Fatalf("dump: %+v, %v", all, err)
	}
}

// can-gw: no duplicate check, newest first, exact-match delete, EINVAL
// for a delete that matches nothing, ENODEV for a missing or non-CAN
// interface, flush.
func TestRules(t *testing.T) {
	k := fakekernel.New()
	a, b := addBus(t, k, "can0", 16), addBus(t, k, "can1", 16)
	gw := cangw.NewConn(k.Dial())
	r1 := cangw.Rule{Src: a.Index, Dst: b.Index}
	r2 := cangw.Rule{Src: b.Index, Dst: a.Index, Flags: cangw.FlagEcho, Filter: &cangw.Filter{ID: 0x123, Mask: 0x7ff}}
	for _, r := range []cangw.Rule{r1, r2, r1} {
		if err := gw.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := gw.List()
	if err != nil || len(got) != 3 || !got[0].Equal(r1) || !got[1].Equal(r2) || !got[2].Equal(r1) {
		t.Fatalf("list: %+v, %v", got, err)
	}
	if err := gw.Delete(r1); err != nil {
		t.Fatal(err)
	}
	if n := len(k.Rules(fakekernel.Host)); n != 2 {
		t.Fatalf("one delete removed %d rules", 3-n)
	}
	other := r2
	other.Flags = 0
	if err := gw.Delete(other); !errors.Is(err, cangw.ErrNoSuchRule) || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("delete without a match: %v", err)
	}
	if err := gw.Add(cangw.Rule{Src: a.Index, Dst: 42}); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("missing interface: %v", err)
	}
	if err := gw.Add(cangw.Rule{Src: a.Index, Dst: 1}); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("lo is not a CAN interface: %v", err)
	}
	if err := gw.Add(cangw.Rule{Src: a.Index, Dst: b.Index, HopLimit: 2}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("hop limit over max_hops: %v", err)
	}
	if err := gw.Flush(); err != nil || len(k.Rules(fakekernel.Host)) != 0 {
		t.Fatalf("flush: %v, %v", err, k.Rules(fakekernel.Host))
	}
}

func TestRateLimit(t *testing.T) {
	k := fakekernel.New()
	bus := addBus(t, k, "can0", 16)
	c := k.Dial()
	if _, ok, err := ratelimit.Get(c, bus.Index); ok || err != nil {
		t.Fatalf("no limit yet: %v, %v", ok, err)
	}
	l := ratelimit.Limit{FramesPerSecond: 100, Burst: 10}
	if err := ratelimit.Apply(c, bus.Index, l); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := ratelimit.Get(c, bus.Index); !ok || err != nil || got != l {
		t.Fatalf("read back %+v, %v, %v", got, ok, err)
	}
	before := k.State()
	l2 := ratelimit.Limit{FramesPerSecond: 50, Burst: 5}
	if err := ratelimit.Apply(c, bus.Index, l2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := ratelimit.Get(c, bus.Index); got != l2 {
		t.Fatalf("changed in place: %+v", got)
	}
	if after := k.State(); strings.Count(after, "ingress") != 1 || after == before {
		t.Fatalf("state after a change:\n%s", after)
	}
	if err := ratelimit.Remove(c, bus.Index); err != nil {
		t.Fatal(err)
	}
	if err := ratelimit.Remove(c, bus.Index); err != nil {
		t.Fatalf("no qdisc (ENOENT) is no error: %v", err)
	}
	if err := ratelimit.Remove(c, 99); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("missing interface: %v", err)
	}
	// The filter goes with its interface.
	if err := ratelimit.Apply(c, bus.Index, l); err != nil {
		t.Fatal(err)
	}
	k.RemoveLink(fakekernel.Host, "can0")
	if strings.Contains(k.State(), "ingress") {
		t.Fatalf("tc state outlived its link:\n%s", k.State())
	}
}

// The nth state-changing request fails and changes nothing; reads are not
// counted.
func TestFailAt(t *testing.T) {
	k := fakekernel.New()
	links := canlink.NewConn(k.Dial())
	k.FailAt(2, unix.ENOMEM)
	if _, err := links.Links(); err != nil {
		t.Fatal(err)
	}
	if _, err := links.CreateVCAN("v0", 72, ""); err != nil {
		t.Fatalf("first change: %v", err)
	}
	before := k.State()
	_, err := links.CreateVCAN("v1", 72, "")
	var ke *nl.KernelError
	if !errors.Is(err, unix.ENOMEM) || !errors.As(err, &ke) {
		t.Fatalf("second change: %v, want ENOMEM", err)
	}
	if k.State() != before {
		t.Fatalf("a failed request changed the state:\n%s", k.State())
	}
	if _, err := links.CreateVCAN("v1", 72, ""); err != nil {
		t.Fatalf("third change: %v", err)
	}
	if k.Mutations() != 3 || len(k.Log()) != 3 || !strings.Contains(k.Log()[1], "injected") {
		t.Fatalf("mutations %d, log %q", k.Mutations(), k.Log())
	}
}

// An interrupted dump answers with half the table, marked; the Conn reads
// it again and gets the whole one, or gives up after its tries.
func TestInterruptedDumps(t *testing.T) {
	k := fakekernel.New()
	for _, name := range []string{"can0", "can1", "can2"} {
		addBus(t, k, name, 16)
	}
	links := canlink.NewConn(k.Dial())
	k.InterruptDumps(2)
	all, err := links.Links()
	if err != nil || len(all) != 4 {
		t.Fatalf("after two interrupted dumps: %d links, %v", len(all), err)
	}
	k.InterruptDumps(100)
	if _, err := links.Links(); !errors.Is(err, nl.ErrDumpInterrupted) {
		t.Fatalf("always interrupted: %v", err)
	}
	k.InterruptDumps(0)
	// An empty table's interrupted dump carries the mark too.
	gw := cangw.NewConn(k.Dial())
	k.InterruptDumps(1)
	if rules, err := gw.List(); err != nil || len(rules) != 0 {
		t.Fatalf("empty rule dump: %v, %v", rules, err)
	}
}

// Create returns only once both ends are operational (linkwatch has run):
// until then the kernel drops what is sent on them. An end that never
// comes up fails Create, naming it, and leaves nothing behind.
func TestCreateWaitsForOperational(t *testing.T) {
	for _, held := range []string{"", "kcanend", "can0"} {
		k := fakekernel.New()
		ns, err := k.NewNS()
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		if held == "kcanend" {
			k.HoldLinkwatch(fakekernel.Host, held)
		} else if held == "can0" {
			k.HoldLinkwatch(int(ns.Fd()), held)
		}
		end, err := vxcan.NewConn(k.Dial()).Create(vxcan.Pair{Name: "kcanend", PeerName: "can0", PeerNS: ns})
		host, _ := k.Link(fakekernel.Host, "kcanend")
		inside, _ := k.Link(int(ns.Fd()), "can0")
		if held == "" {
			if err != nil {
				t.Fatal(err)
			}
			if host.Oper != fakekernel.OperUp || inside.Oper != fakekernel.OperUp || end.OperState != canlink.OperUp {
				t.Fatalf("Create returned with the host end's operstate %d, the inside end's %d (want %d: carrying frames)", host.Oper, inside.Oper, fakekernel.OperUp)
			}
			continue
		}
		want := "vxcan: kcanend (this end) did not come up"
		if held == "can0" {
			want = "vxcan: peer can0 (the other end, in the peer's namespace) did not come up"
		}
		if !errors.Is(err, vxcan.ErrNotOperational) || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "operstate lowerlayerdown") {
			t.Fatalf("%s held: Create = %v, want ErrNotOperational, %q..., its operstate", held, err, want)
		}
		if len(k.Links(fakekernel.Host)) != 1 || len(k.Links(int(ns.Fd()))) != 1 {
			t.Fatalf("%s held: left behind: host %+v, inside %+v", held, k.Links(fakekernel.Host), k.Links(int(ns.Fd())))
		}
	}
}

// A pair made within one namespace: one link watch sees both ends come up,
// whichever order the kernel reports them in.
func TestCreateInOneNamespaceWaitsForBoth(t *testing.T) {
	k := fakekernel.New()
	end, err := vxcan.NewConn(k.Dial()).Create(vxcan.Pair{Name: "vxa", PeerName: "vxb"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := k.Link(fakekernel.Host, "vxa")
	b, _ := k.Link(fakekernel.Host, "vxb")
	if a.Oper != fakekernel.OperUp || b.Oper != fakekernel.OperUp || end.PeerIndex != b.Index {
		t.Fatalf("ends %+v and %+v", a, b)
	}
}
