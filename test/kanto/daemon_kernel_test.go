//go:build kernel

package kanto

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/record"
)

// startDaemon starts kanto-can-daemon watching c's containerd, and returns
// once it is subscribed to its events.
func startDaemon(t *testing.T, c *ctrtest.Containerd, args ...string) *kerneltest.Daemon {
	t.Helper()
	d := kerneltest.StartDaemon(t, wait, append([]string{"--containerd-address=" + c.Address(), "--namespace=" + ns}, args...)...)
	d.AwaitLogEver(t, `msg="watching containerd"`)
	return d
}

// A container whose network namespace outlives it (Kanto's bridge network
// keeps it in a sandbox) and whose poststop hook did not run: when its task
// exits, containerd's event makes the daemon remove its attachment.
func TestDaemonCleansUpAfterAContainerWhoseNamespaceLivesOn(t *testing.T) {
	kerneltest.VCAN(t, "kgone", 16)
	c := env(t)
	d := startDaemon(t, c)
	sandbox := kerneltest.NewNS(t)
	prestartOnly := hooks(t)
	prestartOnly.Poststop = nil
	ct := c.Run(t, ns, "sandboxed", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=kgone:can0"},
		Hooks: prestartOnly, NetNS: sandbox.Path()})
	ct.WaitOutput(t, "ready", wait)
	if list := ls(t); len(list) != 1 || list[0].Container != "sandboxed" {
		t.Fatalf("attachments: %+v", list)
	}
	ct.Stop(t)
	d.AwaitLog(t, "msg=reconciled", "container event", "removed=kcan")
	requireNothingOfOurs(t)
	// The namespace lives on, without its CAN interface.
	if _, _, code := kerneltest.Run(t, "ip", "-n", sandbox.Name(), "link", "show", "can0"); code == 0 {
		t.Fatal("can0 is still in the sandbox namespace")
	}
}

// kill -9 the daemon while 20 containers start at once, then start it
// again: every container is attached exactly once, and the records match
// the kernel.
func TestDaemonKilledWhileContainersStart(t *testing.T) {
	const n = 20
	kerneltest.VCAN(t, "kstorm", 16)
	c := env(t)
	d := startDaemon(t, c)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	started := make(chan *ctrtest.Container, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ct, err := c.Start(t, ns, "storm-"+strconv.Itoa(i), ctrtest.Spec{Image: imageRef, Args: serve,
				Env: []string{"KANTO_CAN=kstorm:can0"}, Hooks: hooks(t)})
			if err != nil {
				errs <- err
				return
			}
			started <- ct
		}()
	}
	// Kill it once it has seen the first containers' interfaces appear,
	// with the others on their way.
	d.AwaitLog(t, "msg=reconciled", "host end made")
	d.Kill9(t)
	wg.Wait()
	close(errs)
	close(started)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var cts []*ctrtest.Container
	for ct := range started {
		ct.WaitOutput(t, "ready", wait)
		cts = append(cts, ct)
	}

	d = startDaemon(t, c)
	list := ls(t)
	if len(list) != n {
		t.Fatalf("%d attachments, want %d", len(list), n)
	}
	var ends, ids []string
	for _, a := range list {
		// One classic bus, both directions: one rule each way.
		if len(a.Rules) != 2 || a.Direction() != "both" {
			t.Errorf("%s: rules %+v, want one rx and one tx", a.Container, a.Rules)
		}
		ends = append(ends, a.HostEnd)
		ids = append(ids, a.Container)
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != n {
		t.Fatalf("containers attached: %v, want %d different ones", ids, n)
	}
	recs, err := record.List(record.DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, r := range recs {
		recorded = append(recorded, r.HostEnd)
	}
	slices.Sort(ends)
	slices.Sort(recorded)
	if !slices.Equal(ends, recorded) {
		t.Fatalf("records %v do not match the host ends %v", recorded, ends)
	}
	// And every one of them answers a frame sent on the bus.
	host := kerneltest.Open(t, nil, "kstorm")
	host.Send(t, frame(0x400, 1))
	want := make([]kerneltest.Frame, n)
	for i := range want {
		want[i] = frame(0x401, 1)
	}
	host.Expect(t, want, wait)
	for _, ct := range cts {
		ct.Stop(t)
	}
	requireNothingOfOurs(t)
}

// Start and stop a container with CAN many times with the daemon running:
// nothing of ours is left, and the daemon's goroutines and memory stay
// flat. KANTO_CAN_SOAK_CYCLES sets the count (make soak: 1000).
func TestDaemonSoak(t *testing.T) {
	cycles := 30
	if s := os.Getenv("KANTO_CAN_SOAK_CYCLES"); s != "" {
		var err error
		if cycles, err = strconv.Atoi(s); err != nil || cycles < 10 {
			t.Fatalf("KANTO_CAN_SOAK_CYCLES=%q: want a count of 10 or more", s)
		}
	}
	kerneltest.VCAN(t, "ksoak", 16)
	c := env(t)
	const addr = "127.0.0.1:9733"
	d := startDaemon(t, c, "--metrics-address="+addr)
	url := "http://" + addr + "/metrics"
	check := []string{"/bin/canapp", "check", "can0"}
	gauge := func(m kerneltest.Metrics, name string) float64 {
		v, ok := m.Value(name, nil)
		if !ok {
			t.Fatalf("metrics: no %s", name)
		}
		return v
	}
	// Memory is compared after a warm-up: the Go heap grows to its first
	// GC target before it levels off, and code pages of the binary join
	// the resident set as paths run for the first time (that is why the
	// anonymous part is compared, not the whole resident set).
	warmup := max(5, cycles/10)
	var goroutines, anon float64
	for i := range cycles {
		ct := c.Run(t, ns, "soak", ctrtest.Spec{Image: imageRef, Args: check, Env: []string{"KANTO_CAN=ksoak:can0"}, Hooks: hooks(t)})
		if code := ct.Wait(t, wait); code != 0 {
			t.Fatalf("cycle %d: entrypoint exited %d: %s", i+1, code, ct.Output())
		}
		ct.Stop(t)
		if i+1 == warmup {
			goroutines, anon = gauge(kerneltest.Scrape(t, url), "go_goroutines"), kerneltest.ProcStatus(t, d.PID(), "RssAnon")
		}
	}
	requireNothingOfOurs(t)
	m := kerneltest.Scrape(t, url)
	g, a := gauge(m, "go_goroutines"), kerneltest.ProcStatus(t, d.PID(), "RssAnon")
	live, rss := gauge(m, "go_gc_heap_live_bytes"), gauge(m, "process_resident_memory_bytes")
	t.Logf("cycles %d -> %d: goroutines %v -> %v, anonymous memory %.1f -> %.1f MiB; at the end: live heap %.2f MiB, resident %.1f MiB",
		warmup, cycles, goroutines, g, anon/(1<<20), a/(1<<20), live/(1<<20), rss/(1<<20))
	if g > goroutines+2 {
		t.Errorf("the daemon's goroutines grew from %v to %v", goroutines, g)
	}
	if a > anon+8<<20 {
		t.Errorf("the daemon's anonymous memory grew from %.1f to %.1f MiB", anon/(1<<20), a/(1<<20))
	}
	// The live heap after the last GC: what a leak would grow.
	if live > 4<<20 {
		t.Errorf("the daemon's live heap is %.2f MiB after %d cycles", live/(1<<20), cycles)
	}
	if v, ok := m.Value("kanto_can_reconciles_total", map[string]string{"result": "error"}); !ok || v != 0 {
		t.Errorf("reconcile errors: %v (found %v)", v, ok)
	}
}
