//go:build kernel

package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/record"
)

// startDaemon starts kanto-can-daemon for the test (see
// kerneltest.StartDaemon).
func startDaemon(t *testing.T, args ...string) *kerneltest.Daemon {
	t.Helper()
	return kerneltest.StartDaemon(t, wait, args...)
}

// Delete and re-create the host bus while three containers are attached:
// the daemon puts their rules back, frames flow to all three again, with no
// duplicate rule.
func TestDaemonRestoresRoutesWhenTheBusReturns(t *testing.T) {
	kerneltest.Require(t)
	untouched := foreign(t)
	kerneltest.MustRun(t, "ip", "link", "add", "dbus", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "dbus", "up")
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "dbus") })
	d := startDaemon(t)
	var inside []*kerneltest.Socket
	for i := 0; i < 3; i++ {
		ns := kerneltest.NewNS(t)
		mustKC(t, "attach", "--netns", ns.Path(), "--bus", "dbus:can0,rx=100-1FF")
		t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
		inside = append(inside, kerneltest.Open(t, ns, "can0"))
	}
	_, before := leftover.Ours(t)

	kerneltest.MustRun(t, "ip", "link", "del", "dbus")
	if _, rules := leftover.Ours(t); len(rules) != 0 {
		t.Fatalf("%d rules survived the bus", len(rules))
	}
	kerneltest.MustRun(t, "ip", "link", "add", "dbus", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "dbus", "up")
	d.AwaitLog(t, "msg=reconciled", "restored=kcan")
	host := kerneltest.Open(t, nil, "dbus")
	host.Send(t, frame(0x123, 1))
	for _, s := range inside {
		s.Expect(t, []kerneltest.Frame{frame(0x123, 1)}, wait)
	}
	if _, rules := leftover.Ours(t); len(rules) != len(before) {
		t.Fatalf("%d rules, want %d", len(rules), len(before))
	}
	untouched()
}

// Another tool flushes every gateway rule (cangw -F, as Leda's
// can-forward does): the kernel tells nobody, the daemon's rule audit
// notices, and its reconcile puts back exactly our rules, once each: frames
// flow again; the foreign rule the flush removed stays removed (not ours to
// restore); the restore shows in the log and the metrics.
func TestDaemonRestoresRulesAfterAFlush(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "flbus", 16)
	kerneltest.VCAN(t, "fla", 16)
	kerneltest.VCAN(t, "flb", 16)
	gw := dialGW(t)
	foreignRule := cangw.Rule{Src: kerneltest.Ifindex(t, "fla"), Dst: kerneltest.Ifindex(t, "flb"), Flags: cangw.FlagEcho}
	if err := gw.Add(foreignRule); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Delete(foreignRule) })
	d := startDaemon(t, "--metrics-address=127.0.0.1:9735")
	var inside []*kerneltest.Socket
	for i := 0; i < 2; i++ {
		ns := kerneltest.NewNS(t)
		mustKC(t, "attach", "--netns", ns.Path(), "--bus", "flbus:can0")
		t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
		inside = append(inside, kerneltest.Open(t, ns, "can0"))
	}
	_, before := leftover.Ours(t)

	if _, errs, _ := kerneltest.Run(t, "cangw", "-F"); errs != "" {
		t.Fatalf("cangw -F: %s", errs)
	}
	if all, _ := gw.List(); len(all) != 0 {
		t.Fatalf("cangw -F left %d rules", len(all))
	}
	d.AwaitLog(t, "msg=reconciled", "gateway rules gone", "restored=kcan")
	// One reconcile may restore one attachment and a second the other:
	// wait until both have their rules.
	for _, after := leftover.Ours(t); len(after) != len(before); _, after = leftover.Ours(t) {
		d.AwaitLog(t, "msg=reconciled", "restored=kcan")
	}
	_, after := leftover.Ours(t)
	for _, r := range before {
		n := 0
		for _, x := range after {
			if x.Equal(r) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("rule %+v: %d after the restore, want 1", r, n)
		}
	}
	host := kerneltest.Open(t, nil, "flbus")
	host.Send(t, frame(0x155, 1))
	for _, s := range inside {
		s.Expect(t, []kerneltest.Frame{frame(0x155, 1)}, wait)
	}
	all, err := gw.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.Equal(foreignRule) {
			t.Error("the daemon re-created a rule that is not ours")
		}
	}
	m := kerneltest.Scrape(t, "http://127.0.0.1:9735/metrics")
	if v, ok := m.Value("kanto_can_rule_audits_total", map[string]string{"result": "rules_gone"}); !ok || v < 1 {
		t.Errorf("metrics: rule audits with rules gone = %v (%v), want at least 1", v, ok)
	}
	if v, ok := m.Value("kanto_can_reconcile_changes_total", map[string]string{"change": "restored"}); !ok || v < 2 {
		t.Errorf("metrics: restored = %v (%v), want at least 2", v, ok)
	}
}

// A container that asked for an optional bus that did not exist yet gets
// routed when the bus appears.
func TestDaemonRoutesAnOptionalBusWhenItAppears(t *testing.T) {
	kerneltest.Require(t)
	d := startDaemon(t)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "latebus:can0,optional")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	inside := kerneltest.Open(t, ns, "can0") // the interface is there already
	kerneltest.VCAN(t, "latebus", 72)
	// Whichever reconcile runs first once the bus exists routes it: the one
	// for the bus, or the one for the attach's host end if it ran late.
	d.AwaitLog(t, "msg=reconciled", "restored=kcan")
	host := kerneltest.Open(t, nil, "latebus")
	host.Send(t, frame(0x321, 7))
	inside.Expect(t, []kerneltest.Frame{frame(0x321, 7)}, wait)
	inside.Send(t, frame(0x322, 8))
	host.Expect(t, []kerneltest.Frame{frame(0x322, 8)}, wait)
}

// faultedAttach runs kanto-can attach built with fault points armed, so that
// it kills itself with SIGKILL at point, half way through the attach.
func faultedAttach(t *testing.T, point string, args ...string) {
	t.Helper()
	cmd := exec.Command(kerneltest.FaultBinary(t), append([]string{"attach"}, args...)...)
	cmd.Env = append(os.Environ(), "KANTO_CAN_FAULT="+point)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("attach with KANTO_CAN_FAULT=%s: %v (want killed by SIGKILL)\n%s", point, err, out)
	}
}

// An attach killed half way (after making the pair, after the first rule)
// leaves a host end without a record. The daemon's next reconcile removes
// it, whether the daemon starts after the kill or runs during it, and
// touches nothing that is not ours.
func TestDaemonRemovesWhatAKilledAttachLeft(t *testing.T) {
	kerneltest.Require(t)
	foreign(t)
	kerneltest.VCAN(t, "hbus", 72)
	ns := kerneltest.NewNS(t)
	before := snapshot(t, nil)
	args := []string{"--netns", ns.Path(), "--bus", "hbus:can0,rx=100-1FF"}

	faultedAttach(t, "rule-added", args...)
	links, rules := leftover.Ours(t)
	if len(links) != 1 || len(rules) != 1 {
		t.Fatalf("the killed attach left links %v and %d rules; want its host end and one rule", links, len(rules))
	}
	if recs, _ := record.List(record.DefaultDir); len(recs) != 0 {
		t.Fatalf("the killed attach left records %+v; it was killed before writing any", recs)
	}
	d := startDaemon(t) // its first reconcile finds the half-made attachment
	requireNothingOfOurs(t)
	if after := snapshot(t, nil); after != before {
		t.Fatalf("state differs from before the attach:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// With the daemon running: the host end's appearance makes it look,
	// once the lock the attach held is free (its maker dead).
	faultedAttach(t, "pair-made", args...)
	d.AwaitLog(t, "msg=reconciled", "removed=kcan")
	requireNothingOfOurs(t)
	if after := snapshot(t, nil); after != before {
		t.Fatalf("state differs from before the attach:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// And a normal attach afterwards is left alone.
	mustKC(t, append([]string{"attach"}, args...)...)
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	// A bus appearing after it makes the daemon reconcile once more, after
	// (or together with) the attach's link event: events are handled in order.
	kerneltest.VCAN(t, "hbus2", 72)
	d.AwaitLog(t, "msg=reconciled", "bus hbus2")
	if links, _ := leftover.Ours(t); len(links) != 1 {
		t.Fatalf("after a good attach and a reconcile: links %v", links)
	}
}

// The counters of `ls -o json` and of the daemon's metrics are the
// kernel's, and match the frames the test sent each way.
func TestMetricsAndListCountFrames(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "mbus", 72)
	const addr = "127.0.0.1:9732"
	startDaemon(t, "--metrics-address="+addr)
	ns := kerneltest.NewNS(t)
	policy := writePolicy(t, `{"buses": {"mbus": {}}, "default": {"buses": {"mbus": {"tx_rate": {"frames_per_second": 1000, "burst": 100}}}}}`)
	mustKC(t, "attach", "--config", policy, "--netns", ns.Path(), "--bus", "mbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	host := kerneltest.Open(t, nil, "mbus")
	inside := kerneltest.Open(t, ns, "can0")
	const rx, tx = 5, 3
	var toInside, toHost []kerneltest.Frame
	for i := range rx {
		f := frame(0x200+uint32(i), byte(i))
		host.Send(t, f)
		toInside = append(toInside, f)
	}
	inside.Expect(t, toInside, wait)
	for i := range tx {
		f := frame(0x300+uint32(i), byte(i))
		inside.Send(t, f)
		toHost = append(toHost, f)
	}
	host.Expect(t, toHost, wait)

	var list []struct {
		Bus   string `json:"bus"`
		Rules []struct {
			Direction string `json:"dir"`
			Handled   uint32 `json:"handled"`
		} `json:"rules"`
		TxRate *struct {
			Passed uint64 `json:"passed"`
		} `json:"tx_rate"`
	}
	if err := json.Unmarshal([]byte(mustKC(t, "ls", "-o", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("ls -o json: %d attachments, %v", len(list), err)
	}
	handled := map[string]uint32{}
	for _, r := range list[0].Rules {
		handled[r.Direction] += r.Handled
	}
	if handled["rx"] != rx || handled["tx"] != tx {
		t.Errorf("ls: handled rx %d tx %d, want %d and %d", handled["rx"], handled["tx"], rx, tx)
	}
	if list[0].TxRate == nil || list[0].TxRate.Passed != tx {
		t.Errorf("ls: tx rate %+v, want %d passed", list[0].TxRate, tx)
	}

	m := kerneltest.Scrape(t, "http://"+addr+"/metrics")
	for dir, want := range map[string]float64{"rx": rx, "tx": tx} {
		got, ok := m.Value("kanto_can_frames_total", map[string]string{"bus": "mbus", "direction": dir, "result": "handled"})
		if !ok || got != want {
			t.Errorf("metrics: %s handled = %v (found %v), want %v", dir, got, ok, want)
		}
	}
	if got, ok := m.Value("kanto_can_tx_rate_frames_total", map[string]string{"bus": "mbus", "result": "passed"}); !ok || got != tx {
		t.Errorf("metrics: tx rate passed = %v (found %v), want %d", got, ok, tx)
	}
	if got, ok := m.Value("kanto_can_attachments", nil); !ok || got != 1 {
		t.Errorf("metrics: attachments = %v (found %v), want 1", got, ok)
	}
	if got, ok := m.Value("kanto_can_reconciles_total", map[string]string{"result": "ok"}); !ok || got < 1 {
		t.Errorf("metrics: ok reconciles = %v (found %v), want at least the first", got, ok)
	}
}

// awaitMetric scrapes url until the named series reaches at least min.
func awaitMetric(t *testing.T, url, name string, labels map[string]string, min float64) kerneltest.Metrics {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m := kerneltest.Scrape(t, url)
		if v, ok := m.Value(name, labels); ok && v >= min {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v did not reach %v within %v", name, labels, min, wait)
		}
		time.Sleep(100 * time.Millisecond) // a counter has no event to await
	}
}

// Without can-gw (the module not loaded) the metrics still answer, with
// what can be read: the bus, the number of attachments, the daemon's own,
// Go's and the process's metrics; kanto_can_scrape_error names the part
// that cannot be read. The rule audit, failing at every interval, warns
// once, and says when it works again; can-gw took our rules with it, and
// the daemon puts them back.
func TestDaemonWithoutCanGW(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "ngbus", 16)
	const url = "http://127.0.0.1:9736/metrics"
	d := startDaemon(t, "--metrics-address=127.0.0.1:9736", "--audit-interval=100ms")
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "ngbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })

	reload := kerneltest.UnloadModule(t, "can_gw")
	d.AwaitLog(t, "level=WARN", "rule audit failing", "can-gw kernel module is not loaded")
	// Audits go on failing, quietly: counted, not logged.
	m := awaitMetric(t, url, "kanto_can_rule_audits_total", map[string]string{"result": "error"}, 5)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kanto_can_scrape_error", map[string]string{"part": "attachments"}, 1},
		{"kanto_can_scrape_error", map[string]string{"part": "buses"}, 0},
		{"kanto_can_attachments", nil, 1},
		{"kanto_can_bus_up", map[string]string{"bus": "ngbus"}, 1},
	} {
		if v, ok := m.Value(c.name, c.labels); !ok || v != c.want {
			t.Errorf("without can-gw: %s%v = %v (%v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "kanto_can_reconciles_total"} {
		if m[name] == nil {
			t.Errorf("without can-gw: no %s", name)
		}
	}
	if m["kanto_can_frames_total"] != nil {
		t.Error("without can-gw: frame counters, read from where?")
	}

	reload()
	d.AwaitLog(t, "rule audit works again")
	d.AwaitLog(t, "msg=reconciled", "restored=kcan")
	if n := d.Count("rule audit failing"); n != 1 {
		t.Errorf("%d warnings of the failing audit, want 1", n)
	}
	host, inside := kerneltest.Open(t, nil, "ngbus"), kerneltest.Open(t, ns, "can0")
	host.Send(t, frame(0x321, 1))
	inside.Expect(t, []kerneltest.Frame{frame(0x321, 1)}, wait)
	m = kerneltest.Scrape(t, url)
	if v, ok := m.Value("kanto_can_scrape_error", map[string]string{"part": "attachments"}); !ok || v != 0 {
		t.Errorf("with can-gw again: scrape error %v (%v)", v, ok)
	}
	if v, ok := m.Value("kanto_can_frames_total", map[string]string{"bus": "ngbus", "direction": "rx", "result": "handled"}); !ok || v != 1 {
		t.Errorf("with can-gw again: rx handled %v (%v), want 1", v, ok)
	}
}

// containerd unreachable (a wrong socket): a warning at start naming the
// address, kanto_can_containerd_up 0. No policy file at the default path:
// a warning at start, kanto_can_policy_info present="false"; the file
// written, the next scrape says present="true" and the log says it once.
func TestDaemonTellsContainerdUnreachableAndThePolicy(t *testing.T) {
	kerneltest.Require(t)
	const url = "http://127.0.0.1:9737/metrics"
	if _, err := os.Stat(policy.DefaultPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: %v; the guest has no policy file", policy.DefaultPath, err)
	}
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	d := startDaemon(t, "--metrics-address=127.0.0.1:9737", "--containerd-address="+sock)
	d.AwaitLogEver(t, "level=WARN", "policy: none", "path="+policy.DefaultPath)
	d.AwaitLogEver(t, "level=WARN", "containerd not reachable", "address="+sock)
	m := kerneltest.Scrape(t, url)
	if v, ok := m.Value("kanto_can_containerd_up", nil); !ok || v != 0 {
		t.Errorf("kanto_can_containerd_up = %v (%v), want 0", v, ok)
	}
	if v, ok := m.Value("kanto_can_policy_info", map[string]string{"path": policy.DefaultPath, "present": "false"}); !ok || v != 1 {
		t.Errorf("kanto_can_policy_info = %v (%v), want present=false", v, ok)
	}
	// The guest's /etc is a tmpfs overlay: nothing reaches the host.
	if err := os.MkdirAll(filepath.Dir(policy.DefaultPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy.DefaultPath, []byte(`{"buses": {"can0": {}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(policy.DefaultPath) })
	m = kerneltest.Scrape(t, url)
	if v, ok := m.Value("kanto_can_policy_info", map[string]string{"path": policy.DefaultPath, "present": "true"}); !ok || v != 1 {
		t.Errorf("after writing the file: kanto_can_policy_info = %v (%v), want present=true", v, ok)
	}
	d.AwaitLog(t, "level=INFO", "msg=policy", "buses=1")
	if n := d.Count("containerd not reachable", "level=WARN"); n != 1 {
		t.Errorf("containerd unreachable warned %d times, want 1", n)
	}
}
