//go:build kernel

package ratelimit_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/ratelimit"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/vxcan"
)

// env is kanto-can's setup in small: a container namespace with two vxcan
// pairs (can0 to be limited, can1 left alone), each host end forwarded by
// can-gw to one host bus, a vcan.
type env struct {
	c          *nl.Conn
	gw         *cangw.Conn
	ns         *kerneltest.NS
	bus        int
	limited    int    // ifindex of the host end of can0
	limitedIf  string // its name
	unlimited  int
	unlimitedI string
}

func setup(t *testing.T) *env {
	t.Helper()
	// tc's ingress qdisc, matchall filter and police action.
	kerneltest.RequireModules(t, "sch_ingress", "cls_matchall", "act_police")
	e := &env{ns: kerneltest.NewNS(t), limitedIf: "kcanrl0", unlimitedI: "kcanrl1"}
	e.bus = kerneltest.VCAN(t, "kt-rlbus", kerneltest.MTUClassic)
	f, err := os.Open(e.ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	links, pairs := canlink.NewConn(c), vxcan.NewConn(c)
	gw, err := cangw.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	e.gw = gw
	for _, p := range []struct {
		host, peer string
		index      *int
	}{{e.limitedIf, "can0", &e.limited}, {e.unlimitedI, "can1", &e.unlimited}} {
		end, err := pairs.Create(vxcan.Pair{Name: p.host, PeerName: p.peer, PeerNS: f, MTU: canlink.MTUClassic})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := links.Delete(end.Index); err != nil && !errors.Is(err, canlink.ErrNotFound) && !errors.Is(err, unix.ENODEV) {
				t.Errorf("cleanup: delete %s: %v", end.Name, err)
			}
		})
		*p.index = end.Index
		rule := cangw.Rule{Src: end.Index, Dst: e.bus, Flags: cangw.FlagEcho}
		if err := gw.Add(rule); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = gw.Delete(rule) }) // gone already if the link went first
	}
	e.c, err = nl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.c.Close() })
	return e
}

// tcJSON runs tc (iproute2, the independent witness) with -s -j and decodes
// its output.
func tcJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out := kerneltest.MustRun(t, "tc", append([]string{"-s", "-j"}, args...)...)
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("tc %v: %v\n%s", args, err, out)
	}
	return v
}

// find walks decoded JSON and returns every object that has key.
func find(v any, key string) []map[string]any {
	var out []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v[key]; ok {
			out = append(out, v)
		}
		for _, x := range v {
			out = append(out, find(x, key)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, find(x, key)...)
		}
	}
	return out
}

// tcPolicers checks what tc says about the ingress filters of ifname: one
// matchall filter holding one police action, and returns that action's
// packet rate and burst.
func tcPolicers(t *testing.T, ifname string) (rate, burst float64) {
	t.Helper()
	filters := tcJSON(t, "filter", "show", "dev", ifname, "ingress")
	var withOptions []map[string]any
	for _, f := range filters {
		if _, ok := f["options"]; ok {
			withOptions = append(withOptions, f)
		}
	}
	if len(withOptions) != 1 || withOptions[0]["kind"] != "matchall" {
		t.Fatalf("tc filter show dev %s ingress: want one matchall filter, got %v", ifname, filters)
	}
	var police []map[string]any
	for _, a := range find(withOptions[0], "kind") {
		if a["kind"] == "police" {
			police = append(police, a)
		}
	}
	if len(police) != 1 {
		t.Fatalf("tc: want one police action, got %v", withOptions[0])
	}
	rate, ok1 := police[0]["pkts_rate"].(float64)
	burst, ok2 := police[0]["pkts_burst"].(float64)
	if !ok1 || !ok2 {
		t.Fatalf("tc: police action without pkts_rate/pkts_burst: %v", police[0])
	}
	return rate, burst
}

func get(t *testing.T, c *nl.Conn, ifindex int) (ratelimit.Limit, bool) {
	t.Helper()
	l, ok, err := ratelimit.Get(c, ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return l, ok
}

func TestApplyGetIdempotentRemove(t *testing.T) {
	e := setup(t)
	if l, ok := get(t, e.c, e.limited); ok {
		t.Fatalf("Get before Apply: %v", l)
	}
	want := ratelimit.Limit{FramesPerSecond: 100, Burst: 10}
	if err := ratelimit.Apply(e.c, e.limited, want); err != nil {
		t.Fatal(err)
	}
	if rate, burst := tcPolicers(t, e.limitedIf); rate != 100 || burst != 10 {
		t.Errorf("tc says pkts_rate %v pkts_burst %v, want 100 10", rate, burst)
	}
	if l, ok := get(t, e.c, e.limited); !ok || l != want {
		t.Errorf("Get = %v %v, want %v", l, ok, want)
	}

	// The kernel fact behind Apply's way of changing a limit: a matchall
	// filter cannot be replaced (tc says so too), so Apply replaces the
	// police action instead.
	out, errs, code := kerneltest.Run(t, "tc", "filter", "replace", "dev", e.limitedIf, "ingress", "protocol", "all",
		"prio", "1", "handle", "1", "matchall", "action", "police", "pkts_rate", "5", "pkts_burst", "1", "conform-exceed", "drop")
	if code == 0 {
		t.Logf("note: this kernel replaced a matchall filter in place: %s", out)
		if err := ratelimit.Apply(e.c, e.limited, want); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("tc filter replace of the matchall filter: exit %d: %s", code, errs)
	}

	// Again, same limit and then another: still one filter, one action.
	if err := ratelimit.Apply(e.c, e.limited, want); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	tcPolicers(t, e.limitedIf)
	other := ratelimit.Limit{FramesPerSecond: 250, Burst: 40}
	if err := ratelimit.Apply(e.c, e.limited, other); err != nil {
		t.Fatalf("Apply with a new limit: %v", err)
	}
	if rate, burst := tcPolicers(t, e.limitedIf); rate != 250 || burst != 40 {
		t.Errorf("after the change tc says pkts_rate %v pkts_burst %v, want 250 40", rate, burst)
	}
	if l, ok := get(t, e.c, e.limited); !ok || l != other {
		t.Errorf("Get = %v %v, want %v", l, ok, other)
	}
	// The other interface is untouched.
	if l, ok := get(t, e.c, e.unlimited); ok {
		t.Errorf("Get on the unlimited end: %v", l)
	}

	if err := ratelimit.Remove(e.c, e.limited); err != nil {
		t.Fatal(err)
	}
	for _, q := range tcJSON(t, "qdisc", "show", "dev", e.limitedIf) {
		if q["kind"] == "ingress" {
			t.Errorf("ingress qdisc left after Remove: %v", q)
		}
	}
	if l, ok := get(t, e.c, e.limited); ok {
		t.Errorf("Get after Remove: %v", l)
	}
	if err := ratelimit.Remove(e.c, e.limited); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := ratelimit.Remove(e.c, e.unlimited); err != nil {
		t.Errorf("Remove on an interface that never had a limit: %v", err)
	}
	if p, d, err := ratelimit.Stats(e.c, e.limited); err != nil || p != 0 || d != 0 {
		t.Errorf("Stats after Remove: %d %d %v", p, d, err)
	}
	// And Apply works again after Remove.
	if err := ratelimit.Apply(e.c, e.limited, want); err != nil {
		t.Fatalf("Apply after Remove: %v", err)
	}
	tcPolicers(t, e.limitedIf)
}

func TestApplyErrors(t *testing.T) {
	e := setup(t)
	if err := ratelimit.Apply(e.c, e.limited, ratelimit.Limit{FramesPerSecond: 0, Burst: 1}); err == nil {
		t.Error("Apply accepted a zero rate")
	}
	if err := ratelimit.Apply(e.c, 1<<30, ratelimit.Limit{FramesPerSecond: 10, Burst: 1}); err == nil {
		t.Error("Apply on a missing interface succeeded")
	} else {
		t.Logf("Apply on a missing interface: %v", err)
	}
	if err := ratelimit.Remove(e.c, 1<<30); err == nil {
		t.Error("Remove on a missing interface succeeded")
	} else {
		t.Logf("Remove on a missing interface: %v", err)
	}
	// The kernel answers a filter dump for a missing interface with an
	// empty dump: Get reads it as unlimited, as documented.
	if l, ok, err := ratelimit.Get(e.c, 1<<30); ok || err != nil {
		t.Errorf("Get on a missing interface: %v %v %v, want no limit and no error", l, ok, err)
	}
	// Nothing was left behind by the failed calls.
	if l, ok := get(t, e.c, e.limited); ok {
		t.Errorf("Get: %v", l)
	}
}

func frame(id uint32) []byte {
	b := make([]byte, unix.CAN_MTU)
	binary.NativeEndian.PutUint32(b, id)
	b[4] = 1
	return b
}

// send writes one classic frame; false if the kernel had no room
// (ENOBUFS: the frame went nowhere).
func send(t *testing.T, s *kerneltest.Socket, f []byte) bool {
	t.Helper()
	for {
		_, err := unix.Write(s.Fd(), f)
		switch {
		case err == nil:
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			return false
		default:
			t.Fatalf("send: %v", err)
		}
	}
}

const (
	idLimited   = 0x100
	idUnlimited = 0x200
	idMarker    = 0x7ff // on the limited path
	idMarkerU   = 0x7fe // on the unlimited path
)

// A container floods the bus for a bounded time through a limited vxcan;
// about rate*seconds+burst frames get through, while every frame of a
// second, unlimited vxcan of the same container passes.
func TestFloodIsLimited(t *testing.T) {
	e := setup(t)
	limit := ratelimit.Limit{FramesPerSecond: 100, Burst: 10}
	if err := ratelimit.Apply(e.c, e.limited, limit); err != nil {
		t.Fatal(err)
	}
	bus := kerneltest.Open(t, nil, "kt-rlbus")
	// Room for everything the flood may bring, so that no frame is lost
	// in the counting socket.
	if err := unix.SetsockoptInt(bus.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
		t.Fatal(err)
	}
	lim := kerneltest.Open(t, e.ns, "can0")
	unl := kerneltest.Open(t, e.ns, "can1")

	const (
		floodFor     = 1500 * time.Millisecond
		maxFlood     = 1_000_000
		maxUnlimited = 1000 // one every 4th flood frame, up to this many
	)
	fLim, fUnl := frame(idLimited), frame(idUnlimited)
	backlogDrops := kerneltest.BacklogDrops(t)
	var sentLim, sentUnl, nobufs int
	start := time.Now()
	for i := 0; i < maxFlood && time.Since(start) < floodFor; i++ {
		if send(t, lim, fLim) {
			sentLim++
		} else {
			nobufs++
		}
		if i%4 == 0 && sentUnl < maxUnlimited {
			if send(t, unl, fUnl) {
				sentUnl++
			} else {
				nobufs++
			}
		}
	}
	elapsed := time.Since(start)
	t.Logf("flood: %d limited and %d unlimited frames sent in %v (%d ENOBUFS)", sentLim, sentUnl, elapsed, nobufs)

	// Count what reached the bus. Frames keep their order along one path,
	// so once a marker sent after the flood arrives, every flood frame has
	// arrived or been dropped. The limited path may drop a marker too (the
	// bucket is empty after the flood): then the next one, sent when a
	// receive times out, vouches instead.
	var gotLim, gotUnl, markers, markersSent int
	markersSent++
	if !send(t, lim, frame(idMarker)) {
		markersSent--
	}
	for markers == 0 {
		f, err := bus.Recv(100 * time.Millisecond)
		if errors.Is(err, kerneltest.ErrTimeout) {
			if markersSent >= 100 {
				t.Fatal("no marker came through the limited path")
			}
			if send(t, lim, frame(idMarker)) {
				markersSent++
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		switch f.ID {
		case idLimited:
			gotLim++
		case idUnlimited:
			gotUnl++
		case idMarker:
			markers++
		default:
			t.Fatalf("unexpected frame %v", f)
		}
	}
	// The unlimited path: its marker always passes.
	if !send(t, unl, frame(idMarkerU)) {
		t.Fatal("marker on the unlimited path: ENOBUFS")
	}
	for done := false; !done; {
		f, err := bus.Recv(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch f.ID {
		case idUnlimited:
			gotUnl++
		case idMarkerU:
			done = true
		default:
			t.Fatalf("unexpected frame %v after the limited marker", f)
		}
	}
	backlogDrops = kerneltest.BacklogDrops(t) - backlogDrops
	gwDropped := gwDrops(t, e)
	t.Logf("on the bus: %d limited (+%d marker of %d sent), %d unlimited; kernel drops: %d backlog, %d can-gw",
		gotLim, markers, markersSent, gotUnl, backlogDrops, gwDropped)
	// The police bucket holds at most Burst frames and earns rate*seconds
	// more over the flood. Allow 10% on the time-based share (timer and
	// scheduling granularity in the emulated guest: the kernel's clock and
	// ours do not start at exactly the same instant) plus the burst on
	// either side, since the bucket may be anywhere between empty and full
	// when the flood starts.
	rateShare := float64(limit.FramesPerSecond) * elapsed.Seconds()
	hi := int(rateShare*1.1) + int(limit.Burst)
	lo := int(rateShare*0.9) - int(limit.Burst)
	if sentLim < 3*hi {
		t.Fatalf("the flood was too slow to test anything: %d frames sent, limit lets %d through", sentLim, hi)
	}
	// A path under this limit would carry at most hi frames: the unlimited
	// one must have been offered well more (the arm64 guest's emulation
	// floods at about a tenth of the amd64 guest's rate).
	if sentUnl <= 2*hi {
		t.Fatalf("the flood was too slow to test the unlimited path: %d frames sent on it, the limit lets %d through", sentUnl, hi)
	}
	if gotLim > hi || gotLim < lo {
		t.Errorf("limited path: %d frames got through in %v, want %d..%d (%v)", gotLim, elapsed, lo, hi, limit)
	}

	// Every frame is accounted for. The police action counts what it let
	// pass and what it dropped. Under a flood the kernel also drops frames
	// of any interface when a CPU's receive backlog is full (vxcan and vcan
	// hand frames on with netif_rx; netdev_max_backlog): seen in this test
	// as a few frames of either path missing, never by the limit. Those
	// drops are counted in /proc/net/softnet_stat, so: all unlimited frames
	// arrive, all limited frames reach the police action, and all it passes
	// arrive, except for at most that many (and any the can-gw rules
	// count as dropped, should the bus refuse a frame).
	passed, dropped, err := ratelimit.Stats(e.c, e.limited)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("police counters: %d passed, %d dropped", passed, dropped)
	lostUnl := sentUnl - gotUnl
	lostBefore := int64(sentLim+markersSent) - int64(passed+dropped)
	lostAfter := int64(passed) - int64(gotLim+markers)
	if lostUnl < 0 || lostBefore < 0 || lostAfter < 0 ||
		uint64(int64(lostUnl)+lostBefore+lostAfter) > backlogDrops+gwDropped {
		t.Errorf("frames unaccounted for: unlimited %d of %d arrived; limited %d sent, police saw %d (%d passed, %d dropped), %d arrived; kernel drops: %d backlog, %d can-gw",
			gotUnl, sentUnl, sentLim+markersSent, passed+dropped, passed, dropped, gotLim+markers, backlogDrops, gwDropped)
	}
	if gotUnl <= 2*hi {
		t.Errorf("unlimited path: only %d of %d frames arrived, as if limited (the limit lets %d through)", gotUnl, sentUnl, hi)
	}
}

// gwDrops sums the Dropped counters of the test's can-gw rules.
func gwDrops(t *testing.T, e *env) uint64 {
	t.Helper()
	rules, err := e.gw.List()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, r := range rules {
		if r.Dst == e.bus && (r.Src == e.limited || r.Src == e.unlimited) {
			n += uint64(r.Dropped)
		}
	}
	return n
}
