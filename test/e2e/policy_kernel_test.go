//go:build kernel

package e2e

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// writePolicy writes a policy file for the test and returns its path.
func writePolicy(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// flood sends frames as fast as the interface takes them: ENOBUFS (a full
// transmit queue) is retried after the queue had a moment to drain.
func flood(t *testing.T, s *kerneltest.Socket, frames []kerneltest.Frame) {
	t.Helper()
	for _, f := range frames {
		for {
			err := sendOnce(s, f)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.ENOBUFS) {
				t.Fatalf("send %s: %v", f, err)
			}
			time.Sleep(200 * time.Microsecond) // back-off, not synchronisation
		}
	}
}

func sendOnce(s *kerneltest.Socket, f kerneltest.Frame) error {
	b := make([]byte, 16) // struct can_frame
	binary.NativeEndian.PutUint32(b, f.ID)
	b[4] = byte(len(f.Data))
	copy(b[8:], f.Data)
	_, err := unix.Write(s.Fd(), b)
	return err
}

func ids(from, to uint32, data ...byte) []kerneltest.Frame {
	var out []kerneltest.Frame
	for id := from; id <= to; id++ {
		out = append(out, frame(id, data...))
	}
	return out
}

// A container allowed to send only 100-10F sends 100..1FF: exactly the
// allowed ids reach the ECU on can1 (emulated hardware), in order.
func TestPolicyTransmitAllowList(t *testing.T) {
	kerneltest.Require(t)
	bus, ecuIf := kerneltest.Kvaser(t)
	kerneltest.MustRun(t, "ip", "link", "set", bus, "txqueuelen", "1000")
	pol := writePolicy(t, `{"buses": {"`+bus+`": {}}, "default": {"buses": {"`+bus+`": {"tx": ["100-10F"]}}}}`)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", bus)
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	ecu := kerneltest.Open(t, nil, ecuIf)
	inside := kerneltest.Open(t, ns, bus)
	onOneCPU(t, func() {
		flood(t, inside, ids(0x100, 0x1FF, 1))
		flood(t, inside, []kerneltest.Frame{frame(0x10A, 0xFF)}) // marker
	})
	ecu.ExpectOnlyUntil(t, ids(0x100, 0x10F, 1), frame(0x10A, 0xFF), wait)
}

// A container allowed to receive only 7DF and 7E8 sees only those while
// the ECU sends 000..7FF.
func TestPolicyReceiveAllowList(t *testing.T) {
	kerneltest.Require(t)
	bus, ecuIf := kerneltest.Kvaser(t)
	kerneltest.MustRun(t, "ip", "link", "set", ecuIf, "txqueuelen", "1000")
	pol := writePolicy(t, `{"buses": {"`+bus+`": {}}, "default": {"buses": {"`+bus+`": {"rx": ["7DF", "7E8"]}}}}`)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", bus)
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	ecu := kerneltest.Open(t, nil, ecuIf)
	inside := kerneltest.Open(t, ns, bus)
	// One frame on the emulated wire at a time: each is sent once the
	// previous one has reached the bus's controller (a witness socket on
	// it). Flooded, the receiving SJA1000 model overruns its FIFO and, now
	// and then, receives nothing more until it is reset.
	witness := kerneltest.Open(t, nil, bus)
	for _, f := range append(ids(0x000, 0x7FF, 2), frame(0x7E8, 0xFF)) { // the last one: the marker
		ecu.Send(t, f)
		witness.Expect(t, []kerneltest.Frame{f}, wait)
	}
	inside.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x7DF, 2), frame(0x7E8, 2)}, frame(0x7E8, 0xFF), wait)
}

// Asking for an ungranted bus or ids fails with a message naming them, and
// nothing is attached. A malformed policy fails with its JSON path, and
// what was attached before stays as it was.
func TestPolicyDeniesAndKeepsState(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "polbus", 16)
	kerneltest.VCAN(t, "polother", 16)
	pol := writePolicy(t, `{"buses": {"polbus": {}, "polother": {}},
		"default": {"buses": {"polbus": {"dir": "both", "rx": ["7DF", "7E8"], "tx": ["7E0"]}}}}`)
	ns := kerneltest.NewNS(t)
	before := snapshot(t, ns)
	for _, tc := range []struct{ bus, want string }{
		{"polother", "policy: this container may not use bus polother"},
		{"polbus,rx=7DF,7E0", "policy: this container, bus polbus: rx ids 7E0 not granted (granted: 7DF,7E8)"},
		{"polbus,tx=7E0-7E7", "tx ids 7E1-7E7 not granted"},
		{"nosuchbus", "policy: bus nosuchbus is not one of the buses for containers"},
	} {
		failKC(t, tc.want, "attach", "--config", pol, "--netns", ns.Path(), "--bus", tc.bus)
		if snapshot(t, ns) != before {
			t.Fatalf("a denied request (%s) left something behind", tc.bus)
		}
	}
	// A granted, narrowed request works; the grant fills in what it left open.
	mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", "polbus,rx=7E8")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	attached := snapshot(t, ns)
	a := lsOne(t, "polbus")
	var got []string
	for _, r := range a.Rules {
		got = append(got, r.Direction+":"+r.Filter)
	}
	if strings.Join(got, " ") != "rx:7E8 tx:7E0" {
		t.Fatalf("rules %v, want rx:7E8 tx:7E0", got)
	}
	// Malformed policies: clear errors with the JSON path; state kept.
	for content, want := range map[string]string{
		`{"buses": {"polbus": {}}, "default": {"buses": {"polbus": {"tx": ["7E0", "7E0"]}}}}`:                 "default.buses.polbus.tx[1]: 7E0 overlaps",
		`{"buses": {"polbus": {}}, "default": {"buses": {"polbus": {"rx": ["800"]}}}}`:                        "default.buses.polbus.rx[0]: 800 is beyond the 11-bit range",
		`{"buses": {"polbus": {}}, "default": {"bus": {}}}`:                                                   "default.bus: unknown field",
		`{"buses": {"polbus": {}}, "default": {"buses": {"polbus": {"tx_rate": {"frames_per_second": -1}}}}}`: "tx_rate.frames_per_second: -1",
		`{"buses": {"polbus": {}},`: "line 1, column",
	} {
		failKC(t, want, "attach", "--config", writePolicy(t, content), "--netns", ns.Path(), "--bus", "polbus")
		if snapshot(t, ns) != attached {
			t.Fatalf("a malformed policy changed the kernel state (%s)", want)
		}
	}
}

// A container limited to 100 frames/s that floods for 3 s gets 100/s onto
// the bus (within 10%, plus at most the burst), while a second container's
// frames on the same bus all arrive.
func TestPolicyRateLimit(t *testing.T) {
	kerneltest.RequireModules(t, "sch_ingress", "cls_matchall", "act_police")
	kerneltest.VCAN(t, "ratebus", 16)
	limited := writePolicy(t, `{"buses": {"ratebus": {}}, "default": {"buses": {"ratebus": {"tx_rate": {"frames_per_second": 100, "burst": 10}}}}}`)
	unlimited := writePolicy(t, `{"buses": {"ratebus": {}}, "default": {"buses": {"ratebus": {}}}}`)
	nsA, nsB := kerneltest.NewNS(t), kerneltest.NewNS(t)
	mustKC(t, "attach", "--config", limited, "--netns", nsA.Path(), "--bus", "ratebus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", nsA.Path()) })
	mustKC(t, "attach", "--config", unlimited, "--netns", nsB.Path(), "--bus", "ratebus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", nsB.Path()) })
	bus := kerneltest.Open(t, nil, "ratebus")
	a := kerneltest.Open(t, nsA, "can0")
	b := kerneltest.Open(t, nsB, "can0")

	// A floods from CPU 0, B sends from CPU 1: each CPU has its own
	// receive backlog, as on a real multi-core machine, and frames of one
	// sender keep their order.
	const seconds = 3
	const sentB = 300
	var elapsed time.Duration
	aDone := make(chan struct{})
	go onCPU(t, 0, func() {
		defer close(aDone)
		start := time.Now()
		for i := 0; time.Since(start) < seconds*time.Second; i++ {
			sendOnce(a, frame(0x100, byte(i))) // ENOBUFS only means fewer tries
		}
		elapsed = time.Since(start)
	})
	go onCPU(t, 1, func() {
		for i := 0; i < sentB; i++ {
			for sendOnce(b, frame(0x200, byte(i))) != nil { // (not t.Fatal: another goroutine)
				time.Sleep(200 * time.Microsecond) // back-off on a full queue
			}
			time.Sleep(seconds * time.Second / sentB) // spread over the flood, not synchronisation
		}
	})
	gotA, gotB := 0, 0
	markerSeen := false
	deadline := time.Now().Add(time.Minute)
	for !markerSeen {
		select {
		case <-aDone:
			// A's marker goes once the policer lets a frame through again;
			// it arrives after every frame of A that got through before it.
			go onCPU(t, 0, func() { sendOnce(a, frame(0x1FF)) })
			aDone = nil
		default:
		}
		f, err := bus.Recv(200 * time.Millisecond)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no marker from A (A %d, B %d so far)", gotA, gotB)
			}
			if aDone == nil {
				go onCPU(t, 0, func() { sendOnce(a, frame(0x1FF)) }) // the policer dropped it: again
			}
			continue
		}
		switch f.ID {
		case 0x100:
			gotA++
		case 0x200:
			gotB++
		case 0x1FF:
			markerSeen = true
		}
	}
	for gotB < sentB {
		f, err := bus.Recv(wait)
		if err != nil {
			t.Fatalf("unlimited container: %d of %d frames arrived", gotB, sentB)
		}
		if f.ID == 0x200 {
			gotB++
		}
	}
	want := 100 * elapsed.Seconds()
	if float64(gotA) < 0.9*want || float64(gotA) > 1.1*want+10 {
		t.Errorf("limited container got %d frames onto the bus in %v, want %.0f (100/s, within 10%%, + burst 10)", gotA, elapsed, want)
	}
	// ls shows the limit and its counters.
	var found bool
	for _, att := range lsAll(t) {
		if att.HostBus == "ratebus" && att.TxRate != nil {
			found = true
			if att.TxRate.FramesPerSecond != 100 || att.TxRate.Burst != 10 || att.TxRate.Dropped == 0 {
				t.Errorf("ls tx_rate %+v", *att.TxRate)
			}
		}
	}
	if !found {
		t.Error("ls shows no rate limit")
	}
	t.Logf("limited: %d frames in %v; unlimited: %d/%d", gotA, elapsed, gotB, sentB)
}

// onCPU runs fn on a thread pinned to one CPU.
func onCPU(t *testing.T, cpu int, fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Errorf("sched_setaffinity: %v", err)
		return
	}
	fn()
}

// A virtual bus from the policy: kanto-can makes the vcan when the first
// container asks for it, and containers on it hear each other (each frame
// once, within both sides' filters), as does a socket on the host's vcan.
func TestPolicyVirtualBus(t *testing.T) {
	kerneltest.Require(t)
	pol := writePolicy(t, `{"buses": {"simbus": {"virtual": true}}, "default": {"buses": {"simbus": {}}}}`)
	nsA, nsB := kerneltest.NewNS(t), kerneltest.NewNS(t)
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "simbus") })
	mustKC(t, "attach", "--config", pol, "--netns", nsA.Path(), "--bus", "simbus:can0,tx=100-1FF")
	t.Cleanup(func() { kc(t, "detach", "--netns", nsA.Path()) })
	if l, err := linkConn(t, nil).LinkByName("simbus"); err != nil || l.Kind != "vcan" || !l.Up {
		t.Fatalf("virtual bus: %+v, %v", l, err)
	}
	mustKC(t, "attach", "--config", pol, "--netns", nsB.Path(), "--bus", "simbus:can0,rx=180-27F")
	t.Cleanup(func() { kc(t, "detach", "--netns", nsB.Path()) })
	host := kerneltest.Open(t, nil, "simbus")
	a := kerneltest.Open(t, nsA, "can0")
	b := kerneltest.Open(t, nsB, "can0")

	onOneCPU(t, func() {
		for _, id := range []uint32{0x150, 0x190, 0x1F0, 0x1FF} {
			a.Send(t, frame(id, 1))
		}
	})
	b.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x190, 1), frame(0x1F0, 1)}, frame(0x1FF, 1), wait)
	host.Expect(t, []kerneltest.Frame{frame(0x150, 1), frame(0x190, 1), frame(0x1F0, 1), frame(0x1FF, 1)}, wait)
	b.Send(t, frame(0x222, 2))
	a.Expect(t, []kerneltest.Frame{frame(0x222, 2)}, wait)
	host.Expect(t, []kerneltest.Frame{frame(0x222, 2)}, wait)

	// Attaching again changes nothing; detaching A removes its rules with B.
	before := snapshot(t, nil)
	mustKC(t, "attach", "--config", pol, "--netns", nsB.Path(), "--bus", "simbus:can0,rx=180-27F")
	if snapshot(t, nil) != before {
		t.Fatal("re-attaching B changed the kernel state")
	}
	mustKC(t, "detach", "--netns", nsA.Path())
	simbus, _ := linkIndex(t, nil, "simbus")
	_, rules := leftover.Ours(t)
	if len(rules) != 6 { // B: rx 180-1FF, 200-27F and tx all, classic and FD each
		t.Errorf("after A left: %d rules of ours, want 6", len(rules))
	}
	for _, r := range rules {
		if r.Src != simbus && r.Dst != simbus {
			t.Errorf("after A left, a rule between containers remains: %+v", r)
		}
	}
}

// On a kernel without one of the rate limit's modules, an attach whose
// policy limits the rate fails with one line naming the module and its
// kernel option, and leaves nothing.
func TestRateLimitWithoutItsModule(t *testing.T) {
	kerneltest.RequireModules(t, "sch_ingress", "cls_matchall", "act_police")
	kerneltest.VCAN(t, "rmbus", 16)
	limited := writePolicy(t, `{"buses": {"rmbus": {}}, "default": {"buses": {"rmbus": {"tx_rate": {"frames_per_second": 100, "burst": 10}}}}}`)
	ns := kerneltest.NewNS(t)
	before := snapshot(t, ns)
	recsBefore, err := record.List(record.DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ module, want string }{
		{"act_police", "modprobe act_police; CONFIG_NET_ACT_POLICE"},
		{"cls_matchall", "modprobe cls_matchall; CONFIG_NET_CLS_MATCHALL"},
		{"sch_ingress", "modprobe sch_ingress; CONFIG_NET_SCH_INGRESS"},
	} {
		reload := kerneltest.UnloadModule(t, c.module)
		failKC(t, c.want, "attach", "--config", limited, "--netns", ns.Path(), "--bus", "rmbus:can0")
		if after := snapshot(t, ns); after != before {
			t.Errorf("without %s: the failed attach left something:\nbefore:\n%s\nafter:\n%s", c.module, before, after)
		}
		reload()
	}
	if recs, err := record.List(record.DefaultDir); err != nil || len(recs) != len(recsBefore) {
		t.Errorf("records: %d after, %d before (%v)", len(recs), len(recsBefore), err)
	}
}
