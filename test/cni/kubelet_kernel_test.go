//go:build kernel

package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/cni"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// A real kubelet (Kubernetes v1.37, make setup unpacks it from shared/k8s)
// standalone, as on a node without an API server: static pods from a
// directory, on the test's containerd and its CRI. Its pods are named
// NAME-node1 in namespace default.
const (
	nodeName    = "node1"
	kubeletWait = 2 * time.Minute // a pod's start under emulation is ~6 s; restarts back off
)

type kubelet struct {
	r                  *cri
	bin, config, root  string
	manifests, podLogs string
	Log                *kerneltest.Lines
	cmd                *exec.Cmd
	extraArgs          []string
}

// startKubelet starts a kubelet on r's containerd. At the end of the test
// its pods' manifests are removed and it is stopped once their sandboxes
// are (so that the CNI DELs run), before containerd stops.
func startKubelet(t *testing.T, r *cri) *kubelet {
	t.Helper()
	bin := os.Getenv("KANTO_CAN_KUBELET")
	if bin == "" {
		t.Skip("KANTO_CAN_KUBELET: set it to Kubernetes' kubelet (make setup unpacks it to .cache/k8s/kubelet)")
	}
	dir := t.TempDir()
	k := &kubelet{r: r, bin: bin, config: filepath.Join(dir, "kubelet.yaml"), root: filepath.Join(dir, "root"),
		manifests: filepath.Join(dir, "manifests"), podLogs: filepath.Join(dir, "pods"), Log: kerneltest.NewLines()}
	for _, d := range []string{k.root, k.manifests, k.podLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The settings of shared/k8s/README.md: no API server, cgroupfs, no
	// QoS cgroups, anonymous and allowed on 127.0.0.1 only. Eviction only
	// when memory is all but gone: the guest's root is a small tmpfs.
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
podLogsDir: %s
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
evictionHard: {memory.available: "1Mi"}
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
address: 127.0.0.1
readOnlyPort: 10255
healthzPort: 10248
`, k.manifests, k.podLogs, r.c.Address())
	if err := os.WriteFile(k.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Start(t)
	t.Cleanup(func() {
		if t.Failed() {
			n := k.Log.Len()
			t.Logf("kubelet's log, last lines:\n%s", strings.Join(k.Log.Slice(max(0, n-40), n), "\n"))
		}
		ents, _ := os.ReadDir(k.manifests)
		for _, e := range ents {
			os.Remove(filepath.Join(k.manifests, e.Name()))
		}
		if k.cmd != nil {
			k.await(t, func() bool { return len(r.readySandboxes(t, "")) == 0 })
		}
		k.Stop(t)
		unmountUnder(t, k.root)
	})
	return k
}

// unmountUnder unmounts what kubelet mounted under its root directory
// (it makes the directory a mount of its own), deepest first.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, m := range points {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
}

// Start runs the kubelet (again, after Stop) and waits until it says it
// started.
func (k *kubelet) Start(t *testing.T) {
	t.Helper()
	args := append([]string{"--config=" + k.config, "--hostname-override=" + nodeName, "--root-dir=" + k.root, "--v=2"}, k.extraArgs...)
	k.cmd = exec.Command(k.bin, args...)
	kerneltest.StartLogged(t, k.cmd, k.Log, kubeletWait, func(l string) bool { return strings.Contains(l, `"Started kubelet"`) })
}

// Stop stops the kubelet as systemd does (SIGTERM) and waits for its end.
// Its pods go on running.
func (k *kubelet) Stop(t *testing.T) {
	t.Helper()
	if k.cmd == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	k.cmd.Wait()
	k.cmd = nil
}

// pod is a static pod of the tests: canapp answering the ECU's frames on
// can0, restarted whenever it ends.
type pod struct {
	name        string
	annotations map[string]string
}

func (p pod) fullName() string { return p.name + "-" + nodeName }

// Run writes p's manifest into the static pod directory.
func (k *kubelet) Run(t *testing.T, p pod) {
	t.Helper()
	ann := ""
	if len(p.annotations) > 0 {
		keys := make([]string, 0, len(p.annotations))
		for k := range p.annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ann = "\n  annotations:"
		for _, key := range keys {
			ann += fmt.Sprintf("\n    %q: %q", key, p.annotations[key])
		}
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default%s
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    command: ["/bin/canapp", "serve", "can0"]
`, p.name, ann, appImage)
	tmp := filepath.Join(k.manifests, "."+p.name+".tmp")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.manifests, p.name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// Remove deletes p's manifest: kubelet stops and removes the pod.
func (k *kubelet) Remove(t *testing.T, p pod) {
	t.Helper()
	if err := os.Remove(filepath.Join(k.manifests, p.name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// podState is what the CRI shows of a pod: its ready sandbox and the app
// container in it (Attempt counts the pod's container restarts, across
// sandboxes).
type podState struct {
	Sandbox, Container string
	Attempt            uint32
}

// AwaitRunning waits until p has one ready sandbox whose app container
// runs and ok accepts the state; then until the app has said "ready" in
// its log. It looks at the CRI's state again at each line of kubelet's
// log: kubelet logs what its relisting of the CRI finds changed ("SyncLoop
// (PLEG)"), so the CRI shows it by then (containerd's own task events may
// come before the CRI's state has it).
func (k *kubelet) AwaitRunning(t *testing.T, p pod, ok func(podState) bool) podState {
	t.Helper()
	var st podState
	k.await(t, func() bool {
		var running bool
		st, running = k.state(t, p)
		return running && ok(st)
	})
	k.awaitLog(t, p, st.Attempt, "ready")
	return st
}

// await returns once done, called now and at each new line of kubelet's
// log, returns true.
func (k *kubelet) await(t *testing.T, done func() bool) {
	t.Helper()
	if !done() {
		k.Log.Await(t, k.Log.Len(), kubeletWait, func(string) bool { return done() })
	}
}

// state is p's state now, and whether its app container runs.
func (k *kubelet) state(t *testing.T, p pod) (podState, bool) {
	t.Helper()
	sbs := k.r.readySandboxes(t, p.fullName())
	if len(sbs) != 1 {
		return podState{}, false
	}
	c := k.r.appContainer(t, sbs[0].Id)
	if c == nil {
		return podState{Sandbox: sbs[0].Id}, false
	}
	return podState{Sandbox: sbs[0].Id, Container: c.Id, Attempt: c.Metadata.Attempt}, c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}

// awaitLog waits until the app container's log of this attempt (the
// kubelet's file under podLogsDir) contains s, and returns the log.
func (k *kubelet) awaitLog(t *testing.T, p pod, attempt uint32, s string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(k.podLogs, "default_"+p.fullName()+"_*", "app"))
	if len(dirs) != 1 {
		t.Fatalf("pod %s: log directories %v", p.fullName(), dirs)
	}
	return waitFile(t, filepath.Join(dirs[0], fmt.Sprintf("%d.log", attempt)), s, kubeletWait)
}

// readySandboxes lists the CRI's ready pod sandboxes, of one pod (by its
// kubelet name) or, with name "", all.
func (r *cri) readySandboxes(t *testing.T, name string) []*runtimeapi.PodSandbox {
	t.Helper()
	f := &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}
	if name != "" {
		f.LabelSelector = map[string]string{"io.kubernetes.pod.name": name}
	}
	resp, err := r.rt.ListPodSandbox(criCtx(t), &runtimeapi.ListPodSandboxRequest{Filter: f})
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	return resp.Items
}

// appContainer is the newest app container of a sandbox, nil if none.
func (r *cri) appContainer(t *testing.T, sandbox string) *runtimeapi.Container {
	t.Helper()
	resp, err := r.rt.ListContainers(criCtx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandbox}})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	var newest *runtimeapi.Container
	for _, c := range resp.Containers {
		if c.Metadata.Name == "app" && (newest == nil || c.Metadata.Attempt > newest.Metadata.Attempt) {
			newest = c
		}
	}
	return newest
}

// exchange sends the ECU's frames and expects canapp's answers (id+1).
func exchange(t *testing.T, ecu string) {
	t.Helper()
	e := kerneltest.Open(t, nil, ecu)
	defer e.Close()
	for _, f := range []kerneltest.Frame{{ID: 0x123, Data: []byte{0xCA, 0xFE}}, {ID: 0x7DF, Data: []byte{2, 1, 0}}} {
		e.Send(t, f)
		want := f
		want.ID++
		e.Expect(t, []kerneltest.Frame{want}, 10*time.Second)
	}
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

// awaitNoRecords waits, on the records directory's changes, until it has
// no record left (a DEL removes the host ends first, then the records).
func awaitNoRecords(t *testing.T) {
	t.Helper()
	err := kerneltest.AwaitFiles(kubeletWait, nil, func(add func(string, uint32)) {
		add(record.DefaultDir, unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_CREATE|unix.IN_MOVED_TO)
	}, func() bool {
		recs, _ := record.List(record.DefaultDir)
		return len(recs) == 0
	})
	if err != nil {
		t.Fatalf("records still there: %v: %s", err, leftover.Describe(t, record.DefaultDir))
	}
}

func (k *kubelet) ctrKill(t *testing.T, id string) {
	t.Helper()
	if _, errs, code := k.r.c.Ctr(t, "-n", criNamespace, "tasks", "kill", "-s", "SIGKILL", id); code != 0 {
		t.Fatalf("ctr tasks kill %s: %s", id, errs)
	}
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
	k := startKubelet(t, r)
	app := pod{name: "canapp"}
	k.Run(t, app)
	st := k.AwaitRunning(t, app, func(podState) bool { return true })
	a := theAttachment(t)
	if a.Container != st.Sandbox || !listed(t, "pod default/"+app.fullName(), st.Sandbox) {
		t.Fatalf("the attachment %+v is not the sandbox %s's, or ls does not show it", a, st.Sandbox)
	}
	exchange(t, ecu)

	t.Run("ContainerCrash", func(t *testing.T) {
		k.ctrKill(t, st.Container)
		now := k.AwaitRunning(t, app, func(s podState) bool { return s.Container != st.Container })
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
		// The pod's second sync since the start: the first one (which
		// would have made or killed anything) is over.
		synced := 0
		k.Log.Await(t, from, kubeletWait, func(l string) bool {
			if strings.Contains(l, `"Creating a mirror pod for static pod" pod="default/`+app.fullName()+`"`) {
				synced++
			}
			return synced == 2
		})
		if now, running := k.state(t, app); !running || now != st {
			t.Fatalf("after kubelet's restart: %+v (running %v), was %+v", now, running, st)
		}
		if again := theAttachment(t); again != a {
			t.Fatalf("the attachment changed: %+v, was %+v", again, a)
		}
		exchange(t, ecu)
	})

	t.Run("SandboxDeath", func(t *testing.T) {
		k.ctrKill(t, st.Sandbox)
		now := k.AwaitRunning(t, app, func(s podState) bool { return s.Sandbox != st.Sandbox })
		b := theAttachment(t)
		// A new pair (the host end's name may come again: it hashes the
		// namespace's inode, which the kernel reuses once the old one is
		// gone).
		if b.Container != now.Sandbox || b.Index == a.Index || !listed(t, "pod default/"+app.fullName(), now.Sandbox) {
			t.Fatalf("new sandbox %s: attachment %+v (the old sandbox's was %+v)", now.Sandbox, b, a)
		}
		if !strings.Contains(r.c.Log(), `TearDown network for sandbox \"`+st.Sandbox+`\" successfully`) {
			t.Errorf("containerd's log does not show the old sandbox's network torn down (its DEL)")
		}
		exchange(t, ecu)
	})

	t.Run("ManifestRemoved", func(t *testing.T) {
		k.Remove(t, app)
		awaitNoRecords(t)
		leftover.RequireNone(t, record.DefaultDir)
	})
}

// klogTime is the time of a kubelet log line ("I1207 02:42:12.383833 ...":
// month, day and time of day, in the guest's UTC).
func klogTime(t *testing.T, line string) time.Time {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 || len(f[0]) != 5 {
		t.Fatalf("not a klog line: %q", line)
	}
	ts, err := time.Parse("0102 15:04:05.000000", f[0][1:]+" "+f[1])
	if err != nil {
		t.Fatalf("klog time of %q: %v", line, err)
	}
	return ts
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
	k := startKubelet(t, r)
	app := pod{name: "canapp"}
	refusal := "policy: container default/" + app.fullName() + " may not use bus can0"
	failed := func(l string) bool {
		return strings.Contains(l, `"Error syncing pod, skipping"`) && strings.Contains(l, refusal)
	}
	from := k.Log.Len()
	k.Run(t, app)
	first, i := k.Log.AwaitIndex(t, from, kubeletWait, failed)
	second, j := k.Log.AwaitIndex(t, i+1, kubeletWait, failed)
	third, _ := k.Log.AwaitIndex(t, j+1, kubeletWait, failed)
	t.Logf("kubelet tried again after %v, then after %v:\n%s",
		klogTime(t, second).Sub(klogTime(t, first)), klogTime(t, third).Sub(klogTime(t, second)), first)
	if !strings.Contains(first, `kanto-can-cni`) || !strings.Contains(first, "failed (add)") {
		t.Errorf("kubelet's log does not name the plugin: %s", first)
	}
	if sbs := r.readySandboxes(t, app.fullName()); len(sbs) != 0 {
		t.Fatalf("a refused pod has a ready sandbox: %v", sbs)
	}
	leftover.RequireNone(t, record.DefaultDir)

	writeFileAtomic(t, pol, `{"buses": {"can0": {}}, "containers": [{"match": "default/canapp-*", "buses": {"can0": {}}}]}`)
	st := k.AwaitRunning(t, app, func(podState) bool { return true })
	if a := theAttachment(t); a.Container != st.Sandbox {
		t.Fatalf("attachment %+v, sandbox %s", a, st.Sandbox)
	}
	exchange(t, ecu)
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
	k := startKubelet(t, r)
	wide := pod{name: "wide"}
	narrow := pod{name: "narrow", annotations: map[string]string{cni.AnnotationBuses: "can0,dir=rx,rx=123"}}
	k.Run(t, wide)
	k.Run(t, narrow)
	ws := k.AwaitRunning(t, wide, func(podState) bool { return true })
	ns := k.AwaitRunning(t, narrow, func(podState) bool { return true })

	w, n := lsOf(t, ws.Sandbox), lsOf(t, ns.Sandbox)
	if w.Label != "pod default/"+wide.fullName() || w.Dir != "both" || len(w.Rules) != 2 {
		t.Errorf("the wide pod's attachment: %+v", w)
	}
	if n.Label != "pod default/"+narrow.fullName() || n.Dir != "rx" || len(n.Rules) != 1 || n.Rules[0].Filter != "123" {
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
	log := k.awaitLog(t, narrow, ns.Attempt, "123#01")
	if strings.Count(log, "123#") != 2 || strings.Contains(log, "7DF#") {
		t.Errorf("the narrow pod's log:\n%s", log)
	}
}

// TestKubeletWithTheDaemon: kanto-can-daemon with its defaults (it
// follows containerd's namespaces kanto-cm, k8s.io and moby) beside the
// kubelet. A sandbox killed while kubelet is down loses its attachment at
// once, on the task's exit; kubelet, back, makes a new sandbox, which gets
// a new attachment, and nothing is left twice.
func TestKubeletWithTheDaemon(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	r := startCRI(t, chainedCAN)
	d := kerneltest.StartDaemon(t, 60*time.Second, "--containerd-address="+r.c.Address())
	k := startKubelet(t, r)
	app := pod{name: "canapp"}
	k.Run(t, app)
	st := k.AwaitRunning(t, app, func(podState) bool { return true })
	a := theAttachment(t)

	k.Stop(t)
	k.ctrKill(t, st.Sandbox)
	d.AwaitLog(t, "msg=reconciled", "removed="+a.HostEnd)
	leftover.RequireNone(t, record.DefaultDir)

	k.Start(t)
	now := k.AwaitRunning(t, app, func(s podState) bool { return s.Sandbox != st.Sandbox })
	if b := theAttachment(t); b.Container != now.Sandbox || b.Index == a.Index {
		t.Fatalf("new sandbox %s: attachment %+v (the old one was %+v)", now.Sandbox, b, a)
	}
	exchange(t, ecu)
}
