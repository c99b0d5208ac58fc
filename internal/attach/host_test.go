package attach

// Tests of the core's decisions on a model of the kernel
// (internal/fakekernel): attach, rollback at every step, idempotence,
// sync, detach. The same paths run against the real kernel in the guest
// tests (test/e2e).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/fakekernel"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
	"github.com/kanto-can/kanto-can/vxcan"
)

// env is a host on a fake kernel, with a records directory.
type env struct {
	t *testing.T
	k *fakekernel.Kernel
	h *Host
}

func newEnv(t *testing.T) *env {
	t.Helper()
	k := fakekernel.New()
	h := NewHost(k.Dial(), k.Dial(), k.Dial(), WithRecords(t.TempDir()))
	return &env{t: t, k: k, h: h}
}

// bus adds a host bus: a CAN controller ("can") or a vcan.
func (e *env) bus(name, kind string, mtu int) fakekernel.Link {
	e.t.Helper()
	l, err := e.k.AddLink(fakekernel.Host, fakekernel.Link{Name: name, Kind: kind, MTU: mtu, Up: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// container is a container's target: its own namespace, its init process
// initProcess (alive; its start time known).
func (e *env) container(id string) *target.Target {
	e.t.Helper()
	ns, err := e.k.NewNS()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ns.Close() })
	pid, start := initProcess(e.t)
	return &target.Target{NS: ns, ID: fmt.Sprintf("netns:%d", 4026532000+ns.Fd()), Label: "container " + id,
		Container: id, PID: pid, Started: start}
}

var initOnce struct {
	sync.Once
	stdin io.WriteCloser // kept: collected, it would close and end cat
	pid   int
	start uint64
	err   error
}

// initProcess is the containers' init process: a child that lives as long
// as the test binary (cat, until its stdin, our pipe, closes). Not the test
// process itself: under qemu-user (make unit's arm runs) /proc/SELF/stat is
// the emulator's, whose start time is the calling thread's, so it changed
// with the goroutine's thread and containers looked gone.
func initProcess(t *testing.T) (int, uint64) {
	t.Helper()
	initOnce.Do(func() {
		cmd := exec.Command("cat")
		if initOnce.stdin, initOnce.err = cmd.StdinPipe(); initOnce.err != nil {
			return
		}
		if initOnce.err = cmd.Start(); initOnce.err != nil {
			return
		}
		initOnce.pid = cmd.Process.Pid
		initOnce.start, initOnce.err = target.ProcessStart(initOnce.pid)
	})
	if initOnce.err != nil {
		t.Fatalf("the containers' init process: %v", initOnce.err)
	}
	return initOnce.pid, initOnce.start
}

// ns is the fake kernel's number of a target's namespace.
func ns(t *target.Target) int { return int(t.NS.Fd()) }

// snapshot is the kernel's state and the records' files.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	b.WriteString(e.k.State())
	entries, err := os.ReadDir(e.h.records)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range entries {
		if strings.HasPrefix(f.Name(), ".") {
			if f.Name() != ".lock" {
				b.WriteString("\nleft over: " + f.Name())
			}
			continue
		}
		c, err := os.ReadFile(filepath.Join(e.h.records, f.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(&b, "\nrecord %s: %s", f.Name(), strings.TrimSpace(string(c)))
	}
	return b.String()
}

func (e *env) records() []record.Record {
	e.t.Helper()
	recs, err := record.List(e.h.records)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// rules returns the host's rules naming ifindex, as sorted strings.
func (e *env) rules(ifindex int) []string {
	var out []string
	for _, r := range e.k.Rules(fakekernel.Host) {
		if r.Src == ifindex || r.Dst == ifindex {
			out = append(out, fakekernel.RuleString(r))
		}
	}
	sort.Strings(out)
	return out
}

// planned is what the plan says the rules of a host end are.
func planned(p Plan, hostEnd int) []string {
	var out []string
	for _, r := range p.Resolve(hostEnd) {
		out = append(out, fakekernel.RuleString(r))
	}
	sort.Strings(out)
	return out
}

func specs(t *testing.T, s ...string) []request.Bus {
	var out []request.Bus
	for _, spec := range s {
		out = append(out, mustBus(t, spec))
	}
	return out
}

func limited(b request.Bus, fps, burst uint64) request.Bus {
	b.TxRate = &request.Rate{FramesPerSecond: fps, Burst: burst}
	return b
}

func TestAttachMakesPairRulesLimitAndRecord(t *testing.T) {
	e := newEnv(t)
	bus := e.bus("can0", "can", 16)
	c := e.container("app")
	res, err := e.h.Attach(c, grant([]request.Bus{limited(mustBus(t, "can0,rx=7DF,7E8"), 100, 10)}))
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if !r.Created || r.Added != 3 || r.Plan.HostBusIndex != bus.Index {
		t.Fatalf("result %+v", r)
	}
	end, ok := e.k.Link(fakekernel.Host, r.Plan.HostEnd)
	if !ok || end.Index != r.HostEndIndex || !end.Up || end.MTU != 16 {
		t.Fatalf("host end %+v, %v", end, ok)
	}
	in, ok := e.k.Link(ns(c), "can0")
	if !ok || !in.Up || in.PeerIndex != end.Index || in.MTU != 16 {
		t.Fatalf("inside end %+v, %v", in, ok)
	}
	meta, ok := ParseAlias(end.Alias)
	if !ok || meta.Target != c.ID || meta.HostBus != "can0" || meta.Container != "app" {
		t.Fatalf("alias %q", end.Alias)
	}
	want := []string{
		fmt.Sprintf("%d>%d 0 000007df/c00007ff", bus.Index, end.Index),
		fmt.Sprintf("%d>%d 0 000007e8/c00007ff", bus.Index, end.Index),
		fmt.Sprintf("%d>%d ECHO|IIF_TX_OK all", end.Index, bus.Index),
	}
	if got := e.rules(end.Index); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rate, _, ok := e.k.Limit(fakekernel.Host, end.Index); !ok || rate != 100 {
		t.Fatalf("rate limit %d, %v", rate, ok)
	}
	recs := e.records()
	if len(recs) != 1 || recs[0].HostEnd != end.Name || recs[0].Container != "app" || recs[0].TxRate == nil || recs[0].PID != c.PID {
		t.Fatalf("records %+v", recs)
	}
	list, err := e.h.List()
	if err != nil || len(list) != 1 || len(list[0].Rules) != 3 || list[0].TxRate == nil || list[0].TxRate.FramesPerSecond != 100 ||
		list[0].HostBusIndex != bus.Index || list[0].Direction() != "both" {
		t.Fatalf("List: %+v, %v", list, err)
	}
}

// rollbackCase is a kernel and records set up, and an attach to make on them.
type rollbackCase struct {
	name  string
	setup func(e *env) (*target.Target, []request.Bus)
}

var rollbackCases = []rollbackCase{
	{"one bus with a rate limit", func(e *env) (*target.Target, []request.Bus) {
		e.bus("can0", "can", 16)
		return e.container("app"), []request.Bus{limited(mustBus(e.t, "can0,rx=100-1FF"), 100, 10)}
	}},
	{"two buses, FD and limited", func(e *env) (*target.Target, []request.Bus) {
		e.bus("can0", "can", 16)
		e.bus("vcan0", "vcan", 72)
		return e.container("app"), []request.Bus{
			limited(mustBus(e.t, "can0"), 100, 10),
			limited(mustBus(e.t, "vcan0:can1,rx=7DF,tx=7E0-7E7"), 50, 5),
		}
	}},
	{"an existing attachment changed, and a new bus", func(e *env) (*target.Target, []request.Bus) {
		e.bus("can0", "can", 16)
		e.bus("can1", "can", 16)
		c := e.container("app")
		if _, err := e.h.Attach(c, grant([]request.Bus{limited(mustBus(e.t, "can0,rx=7DF"), 100, 10)})); err != nil {
			e.t.Fatal(err)
		}
		return c, []request.Bus{limited(mustBus(e.t, "can0,rx=7E8"), 200, 20), mustBus(e.t, "can1")}
	}},
	{"a virtual bus made, with a peer on it", func(e *env) (*target.Target, []request.Bus) {
		vb := mustBus(e.t, "vbus0,tx=100-17F")
		vb.Virtual = true
		if _, err := e.h.Attach(e.container("peer"), grant([]request.Bus{vb})); err != nil {
			e.t.Fatal(err)
		}
		// vbus0 exists now, with the peer on it (peer rules to make);
		// vbus1 is made by the attach.
		vb2 := mustBus(e.t, "vbus1,rx=100-13F")
		vb2.Virtual = true
		vb3 := mustBus(e.t, "vbus0,rx=140-1FF")
		vb3.Virtual = true
		return e.container("app"), []request.Bus{vb2, vb3}
	}},
}

// All or nothing: for every state-changing request of an attach, an
// attach whose request k fails returns that error and leaves the kernel
// and the records as they were.
func TestAttachRollsBackAtEveryStep(t *testing.T) {
	for _, tc := range rollbackCases {
		t.Run(tc.name, func(t *testing.T) {
			// A dry run counts the attach's changes.
			e := newEnv(t)
			c, buses := tc.setup(e)
			before := e.k.Mutations()
			if _, err := e.h.Attach(c, grant(buses)); err != nil {
				t.Fatal(err)
			}
			n := e.k.Mutations() - before
			if n < 3 {
				t.Fatalf("the attach made %d changes", n)
			}
			for k := 1; k <= n; k++ {
				e := newEnv(t)
				c, buses := tc.setup(e)
				want := e.snapshot()
				e.k.FailAt(k, unix.ENOMEM)
				_, err := e.h.Attach(c, grant(buses))
				if !errors.Is(err, unix.ENOMEM) {
					t.Fatalf("change %d of %d failed: attach returned %v", k, n, err)
				}
				checkErrorText(t, err)
				if got := e.snapshot(); got != want {
					t.Errorf("change %d of %d failed (%s): state\n%s\nwant\n%s", k, n, injected(e.k.Log()), got, want)
				}
			}
		})
	}
}

// checkErrorText holds an attach's error to the rule of docs/design.md
// ("Errors"): the core names the bus first, and each layer adds what it
// knows once, so no two successive parts begin alike ("rate limit: rate
// limit on ifindex 3: ...").
func checkErrorText(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "bus ") {
		t.Errorf("%q: does not name the bus first", msg)
	}
	parts := strings.Split(msg, ": ")
	for i := 1; i < len(parts); i++ {
		a, b := strings.Fields(parts[i-1]), strings.Fields(parts[i])
		if len(a) >= 2 && len(b) >= 2 && a[0] == b[0] && a[1] == b[1] {
			t.Errorf("%q: %q then %q say the same thing twice", msg, parts[i-1], parts[i])
		}
	}
}

// An attach returns only once the container's interface carries frames;
// one whose interface never comes up fails, naming the bus and the end,
// and leaves nothing (its second bus, attached first, included).
func TestAttachWaitsForOperational(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	c := e.container("app")
	res, err := e.h.Attach(c, grant(specs(t, "can0")))
	if err != nil {
		t.Fatal(err)
	}
	end, _ := e.k.Link(fakekernel.Host, res[0].Plan.HostEnd)
	in, _ := e.k.Link(ns(c), "can0")
	if end.Oper != fakekernel.OperUp || in.Oper != fakekernel.OperUp {
		t.Fatalf("attach returned with operstates %d (host end) and %d (inside), want %d", end.Oper, in.Oper, fakekernel.OperUp)
	}
	d := e.container("stuck")
	want := e.snapshot()
	e.k.HoldLinkwatch(ns(d), "can1")
	_, err = e.h.Attach(d, grant(specs(t, "can0", "can1")))
	if !errors.Is(err, vxcan.ErrNotOperational) || !strings.Contains(err.Error(), "can1") {
		t.Fatalf("attach with an end that never comes up: %v", err)
	}
	if got := e.snapshot(); got != want {
		t.Errorf("state\n%s\nwant\n%s", got, want)
	}
}

// A second identical attach changes nothing and says so.
func TestAttachIsIdempotent(t *testing.T) {
	for _, tc := range rollbackCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c, buses := tc.setup(e)
			first, err := e.h.Attach(c, grant(buses))
			if err != nil {
				t.Fatal(err)
			}
			state, mutations := e.snapshot(), e.k.Mutations()
			again, err := e.h.Attach(c, grant(buses))
			if err != nil {
				t.Fatal(err)
			}
			if d := e.k.Mutations() - mutations; d != 0 {
				t.Errorf("the second attach made %d changes: %q", d, e.k.Log()[mutations:])
			}
			if got := e.snapshot(); got != state {
				t.Errorf("state changed:\n%s\nwas\n%s", got, state)
			}
			for i := range again {
				r := again[i]
				if r.Created || r.Added+r.Removed > 0 || r.RateChanged || r.HostEndIndex != first[i].HostEndIndex ||
					r.Plan.HostEnd != first[i].Plan.HostEnd {
					t.Errorf("bus %d: again %+v, first %+v", i, r, first[i])
				}
			}
		})
	}
}

// injected is the log's line of the change that failed.
func injected(log []string) string {
	for _, l := range log {
		if strings.Contains(l, "injected") {
			return l
		}
	}
	return "none"
}

// An existing attachment whose rules differ from its plan (one missing,
// one extra, one duplicated) is brought back to the plan; what is missing
// is added before what is extra goes, so forwarding never stops.
func TestSyncFixesRules(t *testing.T) {
	e := newEnv(t)
	bus := e.bus("vcan0", "vcan", 72)
	c := e.container("app")
	buses := specs(t, "vcan0,rx=7DF,7E8")
	res, err := e.h.Attach(c, grant(buses))
	if err != nil {
		t.Fatal(err)
	}
	end := res[0].HostEndIndex
	want := e.rules(end)
	if len(want) != 6 {
		t.Fatalf("rules %q", want)
	}
	current := e.k.Rules(fakekernel.Host)
	// One rule missing, one duplicated, one extra; a foreign rule besides.
	if err := e.h.gw.Delete(current[0]); err != nil {
		t.Fatal(err)
	}
	extra := cangw.Rule{Src: bus.Index, Dst: end, Filter: &cangw.Filter{ID: 0x123, Mask: 0xC00007FF}}
	foreign, err := e.k.AddLink(fakekernel.Host, fakekernel.Link{Name: "vcan9", Kind: "vcan", MTU: 72})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []cangw.Rule{current[1], extra, {Src: bus.Index, Dst: foreign.Index}} {
		if err := e.h.gw.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	mutations := e.k.Mutations()
	again, err := e.h.Attach(c, grant(buses))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.rules(end); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules after sync:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := again[0]; r.Added != 1 || r.Removed != 2 || r.Created {
		t.Fatalf("result %+v", r)
	}
	log := e.k.Log()[mutations:]
	if len(log) != 3 || !strings.Contains(log[0], "newroute") || !strings.Contains(log[1], "delroute") || !strings.Contains(log[2], "delroute") {
		t.Fatalf("changes, in order: %q; want the add first", log)
	}
	if n := len(e.k.Rules(fakekernel.Host)); n != 7 {
		t.Fatalf("%d rules, want ours and the foreign one", n)
	}
}

// foreignPair makes what someone else made: a vxcan pair into another
// namespace (returned) and gateway rules between it and bus, both ways.
func (e *env) foreignPair(bus fakekernel.Link) (other *os.File, host fakekernel.Link) {
	e.t.Helper()
	other, err := e.k.NewNS()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { other.Close() })
	host, _, err = e.k.AddPair(fakekernel.Host, fakekernel.Link{Name: "vx0", Alias: "someone else's"}, int(other.Fd()), fakekernel.Link{Name: "can0"})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range []cangw.Rule{{Src: bus.Index, Dst: host.Index}, {Src: host.Index, Dst: bus.Index, Flags: cangw.FlagEcho}} {
		if err := e.k.AddRule(fakekernel.Host, r); err != nil {
			e.t.Fatal(err)
		}
	}
	return other, host
}

// Detach removes our host ends and, through the kernel, their rules and
// records: a foreign vxcan, one named like ours, and foreign rules stay.
func TestDetachRemovesOnlyOurs(t *testing.T) {
	e := newEnv(t)
	bus := e.bus("can0", "can", 16)
	c := e.container("app")
	other, _ := e.foreignPair(bus)
	// Named like ours, for this very target and bus, without our alias.
	lookalike := HostEndName(c.ID, "can1")
	if _, _, err := e.k.AddPair(fakekernel.Host, fakekernel.Link{Name: lookalike}, int(other.Fd()), fakekernel.Link{Name: "can1"}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	if _, err := e.h.Attach(c, grant(specs(t, "can0"))); err != nil {
		t.Fatal(err)
	}
	gone, err := e.h.Detach(c, nil)
	if err != nil || len(gone) != 1 || gone[0] != "can0" {
		t.Fatalf("detach: %v, %v", gone, err)
	}
	if got := e.snapshot(); got != before {
		t.Fatalf("after detach:\n%s\nwant\n%s", got, before)
	}
	// By bus: the look-alike is refused, not deleted.
	if gone, err := e.h.Detach(c, []string{"can1"}); err != nil || len(gone) != 0 {
		t.Fatalf("detach of a look-alike: %v, %v", gone, err)
	}
	if _, err := e.h.Attach(c, grant(specs(t, "can0"))); err != nil {
		t.Fatal(err)
	}
	if gone, err := e.h.DetachContainer("app"); err != nil || len(gone) != 1 {
		t.Fatalf("detach container: %v, %v", gone, err)
	}
	if got := e.snapshot(); got != before {
		t.Fatalf("after detaching the container:\n%s\nwant\n%s", got, before)
	}
}

// A container whose namespace is gone took its pairs along: detaching it
// by id forgets its records.
func TestDetachContainerForgetsGonePairs(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	c := e.container("app")
	if _, err := e.h.Attach(c, grant(specs(t, "can0"))); err != nil {
		t.Fatal(err)
	}
	e.k.DeleteNS(c.NS)
	if len(e.records()) != 1 {
		t.Fatal("no record to forget")
	}
	if gone, err := e.h.DetachContainer("app"); err != nil || len(gone) != 0 {
		t.Fatalf("detach container: %v, %v", gone, err)
	}
	if recs := e.records(); len(recs) != 0 {
		t.Fatalf("records left: %+v", recs)
	}
}

// DetachAll (a package's removal) removes every attachment of every
// container and every record, also of a container whose namespace is
// gone, and nothing of anyone else's.
func TestDetachAllRemovesOnlyOurs(t *testing.T) {
	e := newEnv(t)
	bus := e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	e.foreignPair(bus)
	a, b := e.container("a"), e.container("b")
	before := e.snapshot()
	gone := e.container("gone") // its namespace goes after attaching, its records stay
	for _, c := range []*target.Target{a, b, gone} {
		if _, err := e.h.Attach(c, grant(specs(t, "can0", "can1"))); err != nil {
			t.Fatal(err)
		}
	}
	e.k.DeleteNS(gone.NS)
	removed, err := e.h.DetachAll()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range removed {
		got = append(got, m.Container+"/"+m.HostBus)
	}
	sort.Strings(got)
	if want := []string{"a/can0", "a/can1", "b/can0", "b/can1"}; !slices.Equal(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("after DetachAll:\n%s\nwant\n%s", after, before)
	}
}

// A hold file (the package's removal) makes Attach refuse with its reason,
// changing nothing; without it Attach works again.
func TestAttachHeld(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	c := e.container("app")
	hold := filepath.Join(e.h.records, record.HoldFile)
	if err := os.WriteFile(hold, []byte("the kanto-can package is being removed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	_, err := e.h.Attach(c, grant(specs(t, "can0")))
	if err == nil || err.Error() != "not attaching: the kanto-can package is being removed" {
		t.Fatalf("held attach: %v", err)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("a held attach changed:\n%s\nwant\n%s", after, before)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Attach(c, grant(specs(t, "can0"))); err != nil {
		t.Fatalf("attach after the hold: %v", err)
	}
}

// Attach refuses, before changing anything: a host end of ours for
// another inside name, a link under our name that is not ours, an inside
// name taken in the container.
func TestAttachRefusals(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	c := e.container("app")
	if _, err := e.h.Attach(c, grant(specs(t, "can0"))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.k.AddPair(fakekernel.Host, fakekernel.Link{Name: HostEndName(c.ID, "can1")}, ns(c), fakekernel.Link{Name: "x0"}); err != nil {
		t.Fatal(err)
	}
	other := e.container("other")
	if _, err := e.k.AddLink(ns(other), fakekernel.Link{Name: "can0", Kind: "vcan"}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	for _, tc := range []struct {
		t    *target.Target
		spec []string
		want string
	}{
		{c, []string{"can0:vcan0"}, "detach it first"},
		{c, []string{"can1"}, "not made by kanto-can"},
		{other, []string{"can0"}, "inside name can0 is already taken"},
		{c, []string{"can9"}, "host bus can9 does not exist"},
		{c, []string{"can0", "can0"}, "requested twice"},
	} {
		_, err := e.h.Attach(tc.t, grant(specs(t, tc.spec...)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.spec, err, tc.want)
		}
		if got := e.snapshot(); got != before {
			t.Fatalf("%v changed the state:\n%s\nwant\n%s", tc.spec, got, before)
		}
	}
}

// grant grants buses as no policy file does: as they are.
func grant(buses []request.Bus) policy.Granted {
	g, _ := (*policy.Policy)(nil).Resolve(nil, buses)
	return g
}
