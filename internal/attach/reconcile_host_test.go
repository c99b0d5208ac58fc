package attach

// Reconcile's decisions on the fake kernel (internal/fakekernel); the
// daemon's guest tests (test/e2e/daemon_kernel_test.go) run the same
// paths against the real kernel.

import (
	"slices"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/fakekernel"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

func (e *env) attach(t *target.Target, spec ...string) []Result {
	e.t.Helper()
	res, err := e.h.Attach(t, grant(specs(e.t, spec...)))
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) reconcile(s Scope) Report {
	e.t.Helper()
	rep, err := e.h.Reconcile(s)
	if err != nil {
		e.t.Fatalf("reconcile %+v: %v", s, err)
	}
	return rep
}

// quiet checks that a reconcile of s changes nothing, in the kernel and
// in its report.
func (e *env) quiet(s Scope) {
	e.t.Helper()
	before, m := e.snapshot(), e.k.Mutations()
	if rep := e.reconcile(s); rep.Changed() {
		e.t.Errorf("reconcile %+v again: %+v", s, rep)
	}
	if d := e.k.Mutations() - m; d != 0 || e.snapshot() != before {
		e.t.Errorf("reconcile %+v again made %d changes: %q", s, d, e.k.Log()[m:])
	}
}

// hostState is a snapshot's lines about the host: its links, rules and
// traffic control, and the records.
func hostState(snapshot string) string {
	var out []string
	for _, l := range strings.Split(snapshot, "\n") {
		if strings.HasPrefix(l, "ns0 ") || strings.HasPrefix(l, "record ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A host end of ours without a record was left half made by a process
// killed part way: it goes, with its rules. Foreign links stay.
func TestReconcileRemovesHalfMadeHostEnds(t *testing.T) {
	for _, scope := range []func(string) Scope{
		func(string) Scope { return Scope{Full: true} },
		func(end string) Scope { return Scope{HostEnds: []string{end}} },
	} {
		e := newEnv(t)
		e.bus("can0", "can", 16)
		c, other := e.container("app"), e.container("db")
		if _, _, err := e.k.AddPair(fakekernel.Host, fakekernel.Link{Name: "kcanforeign0000"}, ns(other), fakekernel.Link{Name: "x"}); err != nil {
			t.Fatal(err)
		}
		e.attach(other, "can0")
		before := e.snapshot()
		end := e.attach(c, "can0")[0].Plan.HostEnd
		if err := record.Remove(e.h.records, end); err != nil {
			t.Fatal(err)
		}
		s := scope(end)
		rep := e.reconcile(s)
		if !slices.Equal(rep.Removed, []string{end}) || len(rep.Restored)+len(rep.Forgotten) > 0 {
			t.Fatalf("%+v: report %+v", s, rep)
		}
		if got := e.snapshot(); got != before {
			t.Fatalf("%+v: state\n%s\nwant\n%s", s, got, before)
		}
		e.quiet(s)
	}
}

// An attachment whose container's init process is gone goes, though its
// namespace (and so its pair) lives on; a record whose pair went with its
// namespace is forgotten. Others stay.
func TestReconcileEndsAttachmentsOfGoneContainers(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	stays := e.container("stays")
	e.attach(stays, "can0")
	before := e.snapshot()

	exited := e.container("exited")
	exited.Started++ // another process under its pid now
	ended := e.container("ended")
	ex := e.attach(exited, "can0", "can1")
	en := e.attach(ended, "can0")
	e.k.DeleteNS(ended.NS)

	rep := e.reconcile(Scope{Containers: []string{"exited", "ended"}})
	if !sameSet(rep.Removed, []string{ex[0].Plan.HostEnd, ex[1].Plan.HostEnd}) ||
		!slices.Equal(rep.Forgotten, []string{en[0].Plan.HostEnd}) || len(rep.Restored) > 0 {
		t.Fatalf("report %+v", rep)
	}
	// The exited container's namespace lives on, without its pairs.
	if got, want := hostState(e.snapshot()), hostState(before); got != want {
		t.Fatalf("state\n%s\nwant\n%s", got, want)
	}
	if l := e.k.Links(ns(exited)); len(l) != 1 || l[0].Name != "lo" {
		t.Fatalf("the exited container's namespace holds %+v", l)
	}
	e.quiet(Scope{Full: true})
}

// A bus that comes back has a new ifindex and no rules: the attachments on
// it get their rules back, naming the new index, once; while it is away
// nothing happens; other buses' attachments are not touched.
func TestReconcileRestoresABusThatCameBack(t *testing.T) {
	e := newEnv(t)
	old := e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	a, b := e.container("a"), e.container("b")
	ra := e.attach(a, "can0,rx=7DF,7E8", "can1")
	rb := e.attach(b, "can0,dir=tx")
	can1Rules := e.rules(ra[1].HostEndIndex)

	if err := e.k.RemoveLink(fakekernel.Host, "can0"); err != nil {
		t.Fatal(err)
	}
	if len(e.rules(ra[0].HostEndIndex)) != 0 {
		t.Fatal("the kernel kept rules of a gone bus")
	}
	e.quiet(Scope{HostBuses: []string{"can0"}})
	bus := e.bus("can0", "can", 16)
	if bus.Index == old.Index {
		t.Fatal("the bus came back with its old index")
	}
	rep := e.reconcile(Scope{HostBuses: []string{"can0"}})
	if !sameSet(rep.Restored, []string{ra[0].Plan.HostEnd, rb[0].Plan.HostEnd}) || len(rep.Removed)+len(rep.Forgotten) > 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range []Result{ra[0], rb[0]} {
		p, err := MakePlan(r.Plan.Request, "", vxcanLink(bus))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e.rules(r.HostEndIndex), planned(p, r.HostEndIndex); !slices.Equal(got, want) {
			t.Errorf("%s: rules %q, want %q", r.Plan.HostEnd, got, want)
		}
	}
	if got := e.rules(ra[1].HostEndIndex); !slices.Equal(got, can1Rules) {
		t.Errorf("can1's rules %q, were %q", got, can1Rules)
	}
	e.quiet(Scope{Full: true})
}

// Another tool's cangw -F: each of our rules comes back exactly once, a
// foreign rule the flush took is not re-created.
func TestReconcileRestoresRulesAfterAFlush(t *testing.T) {
	e := newEnv(t)
	can0 := e.bus("can0", "can", 16)
	vcan := e.bus("vcan0", "vcan", 72)
	if err := e.k.AddRule(fakekernel.Host, cangw.Rule{Src: can0.Index, Dst: vcan.Index}); err != nil {
		t.Fatal(err)
	}
	a, b := e.container("a"), e.container("b")
	ends := []string{
		e.attach(a, "can0,rx=100-1FF", "vcan0")[0].Plan.HostEnd,
		e.attach(b, "can0")[0].Plan.HostEnd,
	}
	ends = append(ends, HostEndName(a.ID, "vcan0"))
	var ours []string
	for _, r := range e.k.Rules(fakekernel.Host) {
		if r.Src != can0.Index || r.Dst != vcan.Index {
			ours = append(ours, fakekernel.RuleString(r))
		}
	}
	e.k.Flush(fakekernel.Host)
	rep := e.reconcile(Scope{HostBuses: []string{"can0", "vcan0"}})
	if !sameSet(rep.Restored, ends) {
		t.Fatalf("restored %q, want %q", rep.Restored, ends)
	}
	var got []string
	for _, r := range e.k.Rules(fakekernel.Host) {
		got = append(got, fakekernel.RuleString(r))
	}
	if !sameSet(got, ours) {
		t.Fatalf("rules after the reconcile:\n%s\nwant ours only, once:\n%s", strings.Join(got, "\n"), strings.Join(ours, "\n"))
	}
	e.quiet(Scope{Full: true})
}

// A scope limits what is synced: a bus's attachments, a container's; a
// host end's scope only checks that it exists.
func TestReconcileScope(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	a, b := e.container("a"), e.container("b")
	ra := e.attach(a, "can0")[0]
	rb := e.attach(b, "can1")[0]
	e.k.Flush(fakekernel.Host)

	if rep := e.reconcile(Scope{HostEnds: []string{ra.Plan.HostEnd, rb.Plan.HostEnd}}); rep.Changed() || len(e.k.Rules(fakekernel.Host)) != 0 {
		t.Fatalf("a host ends' scope synced rules: %+v", rep)
	}
	if rep := e.reconcile(Scope{HostBuses: []string{"can0"}}); !slices.Equal(rep.Restored, []string{ra.Plan.HostEnd}) || len(e.rules(rb.HostEndIndex)) != 0 {
		t.Fatalf("bus can0's scope: %+v, can1's rules %q", rep, e.rules(rb.HostEndIndex))
	}
	if rep := e.reconcile(Scope{Containers: []string{"b"}}); !slices.Equal(rep.Restored, []string{rb.Plan.HostEnd}) {
		t.Fatalf("container b's scope: %+v", rep)
	}
	e.quiet(Scope{Full: true})
	m := e.k.Mutations()
	if rep, err := e.h.Reconcile(Scope{}); err != nil || rep.Changed() || e.k.Mutations() != m {
		t.Fatalf("empty scope: %+v, %v", rep, err)
	}
}

// An optional bus that appears gets routed.
func TestReconcileRoutesAnOptionalBusThatAppears(t *testing.T) {
	e := newEnv(t)
	c := e.container("app")
	r := e.attach(c, "can5,optional")[0]
	if !r.Created || !r.Plan.Pending || len(e.rules(r.HostEndIndex)) != 0 {
		t.Fatalf("pending attach: %+v", r)
	}
	bus := e.bus("can5", "can", 16)
	rep := e.reconcile(Scope{HostBuses: []string{"can5"}})
	if !slices.Equal(rep.Restored, []string{r.Plan.HostEnd}) {
		t.Fatalf("report %+v", rep)
	}
	p, err := MakePlan(r.Plan.Request, "", vxcanLink(bus))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.rules(r.HostEndIndex), planned(p, r.HostEndIndex); !slices.Equal(got, want) {
		t.Fatalf("rules %q, want %q", got, want)
	}
	e.quiet(Scope{Full: true})
}

// Containers on a virtual bus hear each other through direct rules, which
// name both host ends: after a flush each comes back once.
func TestReconcileVirtualBusPeers(t *testing.T) {
	e := newEnv(t)
	var cs []*target.Target
	for _, spec := range []string{"vbus0,rx=100-1FF,tx=100-17F", "vbus0,tx=140-2FF", "vbus0,rx=180-7FF"} {
		b := mustBus(t, spec)
		b.Virtual = true
		c := e.container(spec)
		cs = append(cs, c)
		if _, err := e.h.Attach(c, grant([]request.Bus{b})); err != nil {
			t.Fatal(err)
		}
	}
	want := e.snapshot()
	peer := 0
	for _, r := range e.k.Rules(fakekernel.Host) {
		if l, _ := e.k.Link(fakekernel.Host, "vbus0"); r.Src != l.Index && r.Dst != l.Index {
			peer++
		}
	}
	if peer == 0 {
		t.Fatal("no peer rules")
	}
	e.k.Flush(fakekernel.Host)
	rep := e.reconcile(Scope{HostBuses: []string{"vbus0"}})
	if len(rep.Restored) != 3 {
		t.Fatalf("report %+v", rep)
	}
	if got := e.snapshot(); got != want {
		t.Fatalf("after the reconcile:\n%s\nwant\n%s", got, want)
	}
	e.quiet(Scope{Full: true})
	// One leaves: the rules naming it go with its host end, the others'
	// stay as they are.
	if _, err := e.h.Detach(cs[0], nil); err != nil {
		t.Fatal(err)
	}
	if n := len(e.k.Rules(fakekernel.Host)); n == 0 {
		t.Fatal("no rules left")
	}
	e.quiet(Scope{Full: true})
}

// Interrupted dumps are read again: the reconcile sees every host end and
// every rule, and decides as it would without the interruptions.
func TestReconcileRereadsInterruptedDumps(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	var ends []string
	for _, id := range []string{"a", "b", "c", "d"} {
		ends = append(ends, e.attach(e.container(id), "can0,rx=7DF,7E8")[0].Plan.HostEnd)
	}
	orphan := e.attach(e.container("orphan"), "can0")[0].Plan.HostEnd
	if err := record.Remove(e.h.records, orphan); err != nil {
		t.Fatal(err)
	}
	want := e.k.Rules(fakekernel.Host)
	// Two rules of each gone (as if a tool removed them).
	for i, r := range want {
		if i%3 == 0 {
			if err := e.h.gw.Delete(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.k.InterruptDumps(3)
	rep := e.reconcile(Scope{Full: true})
	if !slices.Equal(rep.Removed, []string{orphan}) || len(rep.Forgotten) > 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, end := range ends {
		l, _ := e.k.Link(fakekernel.Host, end)
		if n := len(e.rules(l.Index)); n != 3 {
			t.Errorf("%s: %d rules, want 3", end, n)
		}
	}
	e.quiet(Scope{Full: true})
}

// vxcanLink is a fake kernel's link as package vxcan reports it.
func vxcanLink(l fakekernel.Link) canlink.Link {
	return canlink.Link{Index: l.Index, Name: l.Name, Kind: l.Kind, Type: l.Type, MTU: l.MTU, Up: l.Up, Alias: l.Alias}
}
