//go:build kernel

package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/cni"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kubetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Pods made by a real kubelet (package kubetest: Kubernetes v1.37,
// standalone, static pods) on containerd's CRI with kanto-can-cni in the
// pod network.

// canapp is a static pod answering the ECU's frames on can0.
func canapp(name string) kubetest.Pod {
	return kubetest.Pod{Name: name, Command: []string{"/bin/canapp", "serve", "can0"}}
}

// attachment is the one attachment of ours there must be: its host end
// (name and ifindex) and its record.
type attachment struct {
	HostEnd   string
	Index     int
	Container string
}

func theAttachment(t *testing.T) attachment {
	t.Helper()
	ends, _ := leftover.Ours(t)
	recs, err := record.List(record.DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) != 1 || len(recs) != 1 || recs[0].HostEnd != ends[0] {
		t.Fatalf("want one attachment: host ends %v, records %+v", ends, recs)
	}
	links, err := canlink.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	l, err := links.LinkByName(ends[0])
	if err != nil {
		t.Fatal(err)
	}
	return attachment{HostEnd: l.Name, Index: l.Index, Container: recs[0].Container}
}

// TestKubeletPodLife: a static pod made by a real kubelet, with
// kanto-can-cni chained, through what Kubernetes does to a pod: its
// container crashes (restarted in the same sandbox: CAN stays, nothing
// attached again), kubelet restarts (nothing changes), its sandbox dies
// (the old attachment goes with the old sandbox's DEL, the new sandbox
// gets its own), and its manifest is removed (nothing left).
func TestKubeletPodLife(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	r := startCRI(t, chainedCAN)
	k := kubetest.StartKubelet(t, r.CRI)
	app := canapp("canapp")
	k.Run(t, app)
	st := k.AwaitRunning(t, app, nil)
	a := theAttachment(t)
	if a.Container != st.Sandbox || !listed(t, "pod default/"+app.FullName(), st.Sandbox) {
		t.Fatalf("the attachment %+v is not the sandbox %s's, or ls does not show it", a, st.Sandbox)
	}
	exchange(t, ecu)

	t.Run("ContainerCrash", func(t *testing.T) {
		r.Kill(t, st.Container)
		now := k.AwaitRunning(t, app, func(s kubetest.PodState) bool { return s.Container != st.Container })
		if now.Sandbox != st.Sandbox || now.Attempt != st.Attempt+1 {
			t.Fatalf("after the crash: %+v, want the same sandbox as %+v and the next attempt", now, st)
		}
		if again := theAttachment(t); again != a {
			t.Fatalf("the attachment changed: %+v, was %+v", again, a)
		}
		exchange(t, ecu)
		st = now
	})

	t.Run("KubeletRestart", func(t *testing.T) {
		from := k.Log.Len()
		k.Stop(t)
		k.Start(t)
		k.AwaitSynced(t, app, from)
		if now, running := k.State(t, app); !running || now != st {
			t.Fatalf("after kubelet's restart: %+v (running %v), was %+v", now, running, st)
		}
		if again := theAttachment(t); again != a {
			t.Fatalf("the attachment changed: %+v, was %+v", again, a)
		}
		exchange(t, ecu)
	})

	t.Run("SandboxDeath", func(t *testing.T) {
		r.Kill(t, st.Sandbox)
		now := k.AwaitRunning(t, app, func(s kubetest.PodState) bool { return s.Sandbox != st.Sandbox })
		b := theAttachment(t)
		// A new pair (the host end's name may come again: it hashes the
		// namespace's inode, which the kernel reuses once the old one is
		// gone).
		if b.Container != now.Sandbox || b.Index == a.Index || !listed(t, "pod default/"+app.FullName(), now.Sandbox) {
			t.Fatalf("new sandbox %s: attachment %+v (the old sandbox's was %+v)", now.Sandbox, b, a)
		}
		if !strings.Contains(r.C.Log(), `TearDown network for sandbox \"`+st.Sandbox+`\" successfully`) {
			t.Errorf("containerd's log does not show the old sandbox's network torn down (its DEL)")
		}
		exchange(t, ecu)
	})

	t.Run("ManifestRemoved", func(t *testing.T) {
		k.Remove(t, app)
		leftover.AwaitNone(t, record.DefaultDir, kubetest.Wait)
	})
}

func writeFileAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestKubeletPolicyRefusalThenGrant: a pod the policy refuses fails its
// sandbox with the plugin's error in kubelet's log, and kubelet tries
// again with its back-off, leaving nothing behind each time; once the
// admin grants the pod, kubelet's next try brings it up, without anyone
// touching the pod.
func TestKubeletPolicyRefusalThenGrant(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	pol := filepath.Join(t.TempDir(), "config.json")
	writeFileAtomic(t, pol, `{"buses": {"can0": {}}, "containers": [{"match": "default/logger-*", "buses": {"can0": {}}}]}`)
	r := startCRI(t, fmt.Sprintf(`{"type": "kanto-can-cni", "buses": ["can0"], "policy": %q}`, pol))
	k := kubetest.StartKubelet(t, r.CRI)
	app := canapp("canapp")
	refusal := "policy: container default/" + app.FullName() + " may not use bus can0"
	failed := func(l string) bool {
		return strings.Contains(l, `"Error syncing pod, skipping"`) && strings.Contains(l, refusal)
	}
	from := k.Log.Len()
	k.Run(t, app)
	first, i := k.Log.AwaitIndex(t, from, kubetest.Wait, failed)
	second, j := k.Log.AwaitIndex(t, i+1, kubetest.Wait, failed)
	third, _ := k.Log.AwaitIndex(t, j+1, kubetest.Wait, failed)
	t.Logf("kubelet tried again after %v, then after %v:\n%s",
		kubetest.LogTime(t, second).Sub(kubetest.LogTime(t, first)), kubetest.LogTime(t, third).Sub(kubetest.LogTime(t, second)), first)
	if !strings.Contains(first, `kanto-can-cni`) || !strings.Contains(first, "failed (add)") {
		t.Errorf("kubelet's log does not name the plugin: %s", first)
	}
	if sbs := r.ReadySandboxes(t, app.FullName()); len(sbs) != 0 {
		t.Fatalf("a refused pod has a ready sandbox: %v", sbs)
	}
	leftover.RequireNone(t, record.DefaultDir)

	writeFileAtomic(t, pol, `{"buses": {"can0": {}}, "containers": [{"match": "default/canapp-*", "buses": {"can0": {}}}]}`)
	st := k.AwaitRunning(t, app, nil)
	if a := theAttachment(t); a.Container != st.Sandbox {
		t.Fatalf("attachment %+v, sandbox %s", a, st.Sandbox)
	}
	exchange(t, ecu)
	k.Remove(t, app)
	leftover.AwaitNone(t, record.DefaultDir, kubetest.Wait)
}

// lsEntry is what the tests read of `kanto-can ls -o json`.
type lsEntry struct {
	Label, Container, Dir string
	Rules                 []struct{ Dir, Filter string }
}

func lsOf(t *testing.T, container string) lsEntry {
	t.Helper()
	out := kerneltest.MustRun(t, kerneltest.Binary(t), "ls", "-o", "json")
	var es []lsEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	for _, e := range es {
		if e.Container == container {
			return e
		}
	}
	t.Fatalf("ls -o json shows nothing of %s:\n%s", container, out)
	return lsEntry{}
}

// TestKubeletTwoPodsOneBus: two static pods on can0, one of them asking
// through its annotation (containerd passes a pod's annotations to a
// plugin that declares the capability) for less than the network gives:
// receive only, id 123. Each gets its own attachment; the ECU's frames
// reach both, as far as each may take them, and only the wide pod answers.
func TestKubeletTwoPodsOneBus(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	r := startCRI(t, `{"type": "kanto-can-cni", "buses": ["can0"], "capabilities": {"io.kubernetes.cri.pod-annotations": true}}`)
	k := kubetest.StartKubelet(t, r.CRI)
	wide := canapp("wide")
	narrow := canapp("narrow")
	narrow.Annotations = map[string]string{cni.AnnotationBuses: "can0,dir=rx,rx=123"}
	k.Run(t, wide)
	k.Run(t, narrow)
	ws := k.AwaitRunning(t, wide, nil)
	ns := k.AwaitRunning(t, narrow, nil)

	w, n := lsOf(t, ws.Sandbox), lsOf(t, ns.Sandbox)
	if w.Label != "pod default/"+wide.FullName() || w.Dir != "both" || len(w.Rules) != 2 {
		t.Errorf("the wide pod's attachment: %+v", w)
	}
	if n.Label != "pod default/"+narrow.FullName() || n.Dir != "rx" || len(n.Rules) != 1 || n.Rules[0].Filter != "123" {
		t.Errorf("the narrow pod's attachment: %+v", n)
	}

	e := kerneltest.Open(t, nil, ecu)
	defer e.Close()
	e.Send(t, kerneltest.Frame{ID: 0x123, Data: []byte{0xCA, 0xFE}})
	e.Send(t, kerneltest.Frame{ID: 0x7DF, Data: []byte{2, 1, 0}})
	e.Send(t, kerneltest.Frame{ID: 0x123, Data: []byte{0x01}})
	// The wide pod answers all three in order; the narrow pod's answers
	// stay in it (it may only receive).
	e.ExpectOnlyUntil(t, []kerneltest.Frame{{ID: 0x124, Data: []byte{0xCA, 0xFE}}, {ID: 0x7E0, Data: []byte{2, 1, 0}}},
		kerneltest.Frame{ID: 0x124, Data: []byte{0x01}}, 10*time.Second)
	// The narrow pod got 123 twice, and not 7DF between them (its log is
	// in the order the frames came).
	log := k.AwaitLog(t, narrow, ns.Attempt, "123#01")
	if strings.Count(log, "123#") != 2 || strings.Contains(log, "7DF#") {
		t.Errorf("the narrow pod's log:\n%s", log)
	}
	k.Remove(t, wide)
	k.Remove(t, narrow)
	leftover.AwaitNone(t, record.DefaultDir, kubetest.Wait)
}

// TestKubeletWithTheDaemon: kanto-can-daemon with its defaults (it
// follows containerd's namespaces kanto-cm, k8s.io and moby) beside the
// kubelet. A sandbox killed while kubelet is down loses its attachment at
// once, on the task's exit; kubelet, back, makes a new sandbox, which gets
// a new attachment, and nothing is left twice.
func TestKubeletWithTheDaemon(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	r := startCRI(t, chainedCAN)
	d := kerneltest.StartDaemon(t, 60*time.Second, "--containerd-address="+r.C.Address())
	k := kubetest.StartKubelet(t, r.CRI)
	app := canapp("canapp")
	k.Run(t, app)
	st := k.AwaitRunning(t, app, nil)
	a := theAttachment(t)

	k.Stop(t)
	r.Kill(t, st.Sandbox)
	d.AwaitLog(t, "msg=reconciled", "removed="+a.HostEnd)
	leftover.RequireNone(t, record.DefaultDir)

	k.Start(t)
	now := k.AwaitRunning(t, app, func(s kubetest.PodState) bool { return s.Sandbox != st.Sandbox })
	if b := theAttachment(t); b.Container != now.Sandbox || b.Index == a.Index {
		t.Fatalf("new sandbox %s: attachment %+v (the old one was %+v)", now.Sandbox, b, a)
	}
	exchange(t, ecu)
	k.Remove(t, app)
	leftover.AwaitNone(t, record.DefaultDir, kubetest.Wait)
}
