package daemon

// The daemon's decisions on the fake kernel (internal/fakekernel): which
// link notifications and which rule counts ask for a reconcile, and what
// that reconcile does. test/e2e's daemon tests run them in the guest.

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/fakekernel"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
	"github.com/kanto-can/kanto-can/nl"
)

func newHost(t *testing.T, k *fakekernel.Kernel) *attach.Host {
	return attach.NewHost(k.Dial(), k.Dial(), k.Dial(), attach.WithRecords(t.TempDir()))
}

func attachTo(t *testing.T, k *fakekernel.Kernel, h *attach.Host, id string, spec string) attach.Result {
	t.Helper()
	ns, err := k.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	b, err := request.ParseBus(spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Attach(&target.Target{NS: ns, ID: "netns:" + id, Label: "container " + id}, grant([]request.Bus{b}))
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// links dumps the fake kernel's host links as the notifications carry them.
func links(t *testing.T, k *fakekernel.Kernel) map[string]nl.Message {
	t.Helper()
	msgs, err := k.Func(fakekernel.Host, nl.Message{Header: nl.Header{Type: unix.RTM_GETLINK, Flags: nl.Dump}, Data: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]nl.Message{}
	for _, m := range msgs {
		l, err := canlink.ParseLink(m)
		if err != nil {
			t.Fatal(err)
		}
		out[l.Name] = m
	}
	return out
}

// Which link notifications ask for which reconcile.
func TestLinkEvents(t *testing.T) {
	k := fakekernel.New()
	h := newHost(t, k)
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "can0", Kind: "can", Up: true})
	end := attachTo(t, k, h, "1", "can0").Plan.HostEnd
	other, _ := k.NewNS()
	defer other.Close()
	k.AddPair(fakekernel.Host, fakekernel.Link{Name: "vx0"}, int(other.Fd()), fakekernel.Link{Name: "can0"})
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "eth0", Type: unix.ARPHRD_ETHER, MTU: 1500})
	seen := map[string]busID{}
	event := func(typ nl.HeaderType, m nl.Message) (string, attach.Scope, bool) {
		l, err := canlink.ParseLink(m)
		if err != nil {
			t.Fatal(err)
		}
		return linkEvent(seen, typ, l)
	}
	ls := links(t, k)
	for _, c := range []struct {
		typ   nl.HeaderType
		link  string
		why   string
		scope attach.Scope
	}{
		{unix.RTM_NEWLINK, "can0", "bus can0", attach.Scope{HostBuses: []string{"can0"}}},
		{unix.RTM_NEWLINK, "can0", "", attach.Scope{}}, // the same bus again (up, down, bitrate)
		{unix.RTM_NEWLINK, end, "host end made", attach.Scope{HostEnds: []string{end}}},
		{unix.RTM_DELLINK, end, "host end gone", attach.Scope{HostEnds: []string{end}}},
		{unix.RTM_NEWLINK, "vx0", "", attach.Scope{}}, // a foreign vxcan
		{unix.RTM_NEWLINK, "eth0", "", attach.Scope{}},
		{unix.RTM_NEWLINK, "lo", "", attach.Scope{}},
		{unix.RTM_DELLINK, "can0", "", attach.Scope{}},
		{unix.RTM_NEWLINK, "can0", "bus can0", attach.Scope{HostBuses: []string{"can0"}}}, // back
	} {
		why, scope, ok := event(c.typ, ls[c.link])
		if why != c.why || ok != (c.why != "") || !slices.Equal(scope.HostBuses, c.scope.HostBuses) || !slices.Equal(scope.HostEnds, c.scope.HostEnds) {
			t.Errorf("%d %s: %q %+v %v, want %q %+v", c.typ, c.link, why, scope, ok, c.why, c.scope)
		}
	}
	// Back with a new ifindex, or a new MTU.
	k.RemoveLink(fakekernel.Host, "can0")
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "can0", Kind: "can", Up: true})
	if why, _, _ := event(unix.RTM_NEWLINK, links(t, k)["can0"]); why != "bus can0" {
		t.Errorf("a bus with a new index: %q", why)
	}
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The rule audit notices another tool's flush and asks for the buses; the
// reconcile it asks for puts back each rule of ours once, and the next
// audit is quiet.
func TestAuditAndReconcileAfterAFlush(t *testing.T) {
	k := fakekernel.New()
	h := newHost(t, k)
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "can0", Kind: "can", Up: true})
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "vcan0", Kind: "vcan", MTU: 72, Up: true})
	ends := []string{
		attachTo(t, k, h, "1", "can0").Plan.HostEnd,
		attachTo(t, k, h, "2", "can0,rx=7DF").Plan.HostEnd,
		attachTo(t, k, h, "3", "vcan0").Plan.HostEnd,
	}
	rules := len(k.Rules(fakekernel.Host))
	d := &Daemon{host: h, log: slog.New(slog.NewTextHandler(io.Discard, nil)), kick: make(chan struct{}, 1),
		metrics: newMetrics(metricsSource{open: openHost(h.Records()), names: func() map[string]string { return nil }})}
	lc, gc := canlink.NewConn(k.Dial()), cangw.NewConn(k.Dial())

	last, err := d.audit(lc, gc, nil)
	if err != nil || len(d.pending) != 0 || len(last) != 3 {
		t.Fatalf("first count: %v, %v, pending %q", last, err, d.pending)
	}
	k.Flush(fakekernel.Host)
	if last, err = d.audit(lc, gc, last); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.pending, []string{"gateway rules gone"}) || !slices.Equal(d.scope.HostBuses, []string{"can0", "vcan0"}) || len(d.kick) != 1 {
		t.Fatalf("after a flush: pending %q, scope %+v", d.pending, d.scope)
	}
	if got := counter(t, d.metrics.audits.WithLabelValues("rules_gone")); got != 1 {
		t.Fatalf("audits with rules gone: %v", got)
	}
	d.reconcile("gateway rules gone", d.scope)
	if n := len(k.Rules(fakekernel.Host)); n != rules {
		t.Fatalf("%d rules after the reconcile, want %d", n, rules)
	}
	if got := counter(t, d.metrics.changes.WithLabelValues("restored")); got != float64(len(ends)) {
		t.Fatalf("restored: %v, want %d", got, len(ends))
	}
	if got := counter(t, d.metrics.reconciles.WithLabelValues("ok")); got != 1 {
		t.Fatalf("reconciles ok: %v", got)
	}
	d.pending, d.scope = nil, attach.Scope{}
	if _, err = d.audit(lc, gc, last); err != nil || len(d.pending) != 0 {
		t.Fatalf("audit after the reconcile: %v, pending %q", err, d.pending)
	}
	if got := counter(t, d.metrics.audits.WithLabelValues("ok")); got != 2 {
		t.Fatalf("quiet audits: %v", got)
	}
}

// A reconcile that fails is counted as an error; what it could do is done.
func TestReconcileErrorCounted(t *testing.T) {
	k := fakekernel.New()
	h := newHost(t, k)
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "can0", Kind: "can", Up: true})
	attachTo(t, k, h, "1", "can0")
	d := &Daemon{host: h, log: slog.New(slog.NewTextHandler(io.Discard, nil)), kick: make(chan struct{}, 1),
		metrics: newMetrics(metricsSource{open: openHost(h.Records()), names: func() map[string]string { return nil }})}
	k.Flush(fakekernel.Host)
	k.FailAt(1, unix.ENOBUFS)
	d.reconcile("test", attach.Scope{Full: true})
	if got := counter(t, d.metrics.reconciles.WithLabelValues("error")); got != 1 {
		t.Fatalf("reconciles with an error: %v", got)
	}
	d.reconcile("test", attach.Scope{Full: true})
	if got := counter(t, d.metrics.changes.WithLabelValues("restored")); got != 1 || len(k.Rules(fakekernel.Host)) != 2 {
		t.Fatalf("restored %v, rules %d", got, len(k.Rules(fakekernel.Host)))
	}
}

// grant grants buses as no policy file does: as they are.
func grant(buses []request.Bus) policy.Granted {
	g, _ := (*policy.Policy)(nil).Resolve(nil, buses)
	return g
}
