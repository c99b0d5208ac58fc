package attach

import (
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/fakekernel"
)

// Check reports what is missing or extra and changes nothing.
func TestCheck(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	e.bus("can1", "can", 16)
	c := e.container("pod")
	res := e.attach(c, "can0,rx=7E8", "can1")
	// The inside interface is looked at through a socket in the target's
	// namespace, which the fake kernel cannot give: the host side only.
	host := *c
	host.NS = nil
	if err := e.h.Check(&host, grant(specs(t, "can0,rx=7E8", "can1"))); err != nil {
		t.Fatalf("check after attach: %v", err)
	}
	m := e.k.Mutations()
	for _, c := range []struct{ spec, want string }{
		{"can0,rx=7E0", "bus can0: gateway rule rx classic 7E0 is missing"},
		{"can0", "bus can0: gateway rule rx classic all is missing"},
		{"can0:vcan0", "bus can0 is already attached to container pod as can0; detach it first to rename it vcan0"},
	} {
		if err := e.h.Check(&host, grant(specs(t, c.spec))); err == nil || err.Error() != c.want {
			t.Errorf("check %s: got %v, want %s", c.spec, err, c.want)
		}
	}
	other := e.container("other")
	other.NS = nil
	if err := e.h.Check(other, grant(specs(t, "can0"))); err == nil || !strings.Contains(err.Error(), "host end "+HostEndName(other.ID, "can0")+" is missing") {
		t.Errorf("check of a target without attachment: %v", err)
	}
	// A rule deleted behind our back, then a duplicate.
	rules := e.k.Rules(fakekernel.Host)
	var rx cangw.Rule
	for _, r := range rules {
		if r.Dst == res[0].HostEndIndex {
			rx = r
		}
	}
	if err := e.h.gw.Delete(rx); err != nil {
		t.Fatal(err)
	}
	if err := e.h.Check(&host, grant(specs(t, "can0,rx=7E8"))); err == nil || err.Error() != "bus can0: gateway rule rx classic 7E8 is missing" {
		t.Errorf("check with a rule gone: %v", err)
	}
	for range 2 {
		if err := e.h.gw.Add(rx); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.h.Check(&host, grant(specs(t, "can0,rx=7E8"))); err == nil || err.Error() != "bus can0: gateway rule rx classic 7E8 is not in the grant (extra or duplicate)" {
		t.Errorf("check with a rule twice: %v", err)
	}
	if err := e.h.gw.Delete(rx); err != nil {
		t.Fatal(err)
	}
	// The test's own four changes, none of Check's.
	if d := e.k.Mutations() - m; d != 4 {
		t.Errorf("check changed the kernel: %d changes besides the test's: %q", d-4, e.k.Log()[m:])
	}
}

// A pod sandbox's attachment (no pid known) ends with containerd's event
// for its task, not with any other container's, nor with a full reconcile.
func TestReconcileEndsPodSandboxesWithTheirTask(t *testing.T) {
	e := newEnv(t)
	e.bus("can0", "can", 16)
	pod := e.container("sandbox1")
	pod.PID, pod.Started, pod.EndsWithTask = 0, 0, true
	res := e.attach(pod, "can0")
	if r := e.records(); len(r) != 1 || !r[0].EndsWithTask || r[0].PID != 0 {
		t.Fatalf("record %+v", r)
	}
	e.quiet(Scope{Full: true})
	e.quiet(Scope{Containers: []string{"sandbox2"}})
	rep := e.reconcile(Scope{Containers: []string{"sandbox1"}})
	if len(rep.Removed) != 1 || rep.Removed[0] != res[0].Plan.HostEnd {
		t.Fatalf("report %+v", rep)
	}
	if r := e.records(); len(r) != 0 {
		t.Fatalf("records %+v", r)
	}
	if l := e.k.Links(ns(pod)); len(l) != 1 || l[0].Name != "lo" {
		t.Fatalf("the pod's namespace holds %+v", l)
	}
}
