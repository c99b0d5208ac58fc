package kubetest

import (
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

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// EnvKubelet names the kubelet binary (make passes .cache/k8s/kubelet).
const EnvKubelet = "KANTO_CAN_KUBELET"

// NodeName is the kubelet's node: a static pod NAME is NAME-node1 there.
const NodeName = "node1"

// Wait bounds every wait on the kubelet: a pod's start under emulation
// takes about 6 s, and kubelet backs off between failed tries (10-20 s).
const Wait = 2 * time.Minute

// Kubelet is a real kubelet, standalone as on a node without an API
// server (shared/k8s/README.md): static pods from a directory of the
// test's, on a CRI of the test's.
type Kubelet struct {
	// Log is the kubelet's log (klog on stderr, --v=2: it says what its
	// relisting of the CRI found changed, "SyncLoop (PLEG)"; and when it
	// has synced a pod, "SyncPod exit").
	Log *kerneltest.Lines

	r                  *CRI
	bin, config, root  string
	manifests, podLogs string
	cmd                *exec.Cmd
}

// Ports are the kubelet's TCP ports on 127.0.0.1; 0 turns the read-only
// and healthz ones off. Two kubelets on one guest need their own.
type Ports struct{ Server, ReadOnly, Healthz int }

// DefaultPorts are Kubernetes' defaults.
var DefaultPorts = Ports{Server: 10250, ReadOnly: 10255, Healthz: 10248}

// StartKubelet starts a kubelet on r with DefaultPorts. At the end of the
// test its pods' manifests are removed and it is stopped once their
// sandboxes are (so that their CNI DELs run), before r's containerd stops.
func StartKubelet(t testing.TB, r *CRI) *Kubelet { return StartKubeletPorts(t, r, DefaultPorts) }

// StartKubeletPorts is StartKubelet on other ports.
func StartKubeletPorts(t testing.TB, r *CRI, ports Ports) *Kubelet {
	t.Helper()
	bin := os.Getenv(EnvKubelet)
	if bin == "" {
		t.Skipf("%s: set it to Kubernetes' kubelet (make setup unpacks it to .cache/k8s/kubelet)", EnvKubelet)
	}
	dir := t.TempDir()
	k := &Kubelet{r: r, bin: bin, config: filepath.Join(dir, "kubelet.yaml"), root: filepath.Join(dir, "root"),
		manifests: filepath.Join(dir, "manifests"), podLogs: filepath.Join(dir, "pods"), Log: kerneltest.NewLines()}
	for _, d := range []string{k.root, k.manifests, k.podLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// shared/k8s/README.md's settings: cgroupfs, no QoS cgroups, anonymous
	// and allowed on 127.0.0.1 only. Evictions only when memory is all but
	// gone: the guest's root is a small tmpfs.
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
port: %d
readOnlyPort: %d
healthzPort: %d
`, k.manifests, k.podLogs, r.C.Address(), ports.Server, ports.ReadOnly, ports.Healthz)
	if err := os.WriteFile(k.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Start(t)
	t.Cleanup(func() {
		if t.Failed() {
			n := k.Log.Len()
			t.Logf("kubelet's log, last lines:\n%s", strings.Join(k.Log.Slice(max(0, n-40), n), "\n"))
		}
		// Kubelet is done with a removed pod once it has stopped its
		// sandbox, the CNI DEL included ("SyncTerminatingPod exit"); a
		// sandbox no longer ready may not have had its DEL yet.
		from := k.Log.Len()
		ents, _ := os.ReadDir(k.manifests)
		for _, e := range ents {
			os.Remove(filepath.Join(k.manifests, e.Name()))
		}
		for _, e := range ents {
			if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && k.cmd != nil {
				k.AwaitTerminated(t, Pod{Name: name}, from)
			}
		}
		k.Stop(t)
		unmountUnder(t, k.root)
	})
	return k
}

// Start runs the kubelet (again, after Stop) and waits until it says it
// started.
func (k *Kubelet) Start(t testing.TB) {
	t.Helper()
	// --v=2, and 4 for kubelet.go: it says when it is done with a pod's
	// sync ("SyncPod exit"), whether or not the sync changed anything, and
	// with a removed pod's stop ("SyncTerminatingPod exit").
	k.cmd = exec.Command(k.bin, "--config="+k.config, "--hostname-override="+NodeName, "--root-dir="+k.root, "--v=2", "--vmodule=kubelet=4")
	kerneltest.StartLogged(t, k.cmd, k.Log, Wait, func(l string) bool { return strings.Contains(l, `"Started kubelet"`) })
}

// Stop stops the kubelet as systemd does (SIGTERM) and waits for its end.
// Its pods go on running.
func (k *Kubelet) Stop(t testing.TB) {
	t.Helper()
	if k.cmd == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	k.cmd.Wait()
	k.cmd = nil
}

// Await returns once done, called now and at each new line of kubelet's
// log, returns true: kubelet logs what it does and what its relisting of
// the CRI finds changed, so the CRI shows it by then (containerd's own
// task events may come before the CRI's state has them).
func (k *Kubelet) Await(t testing.TB, done func() bool) {
	t.Helper()
	if !done() {
		k.Log.Await(t, k.Log.Len(), Wait, func(string) bool { return done() })
	}
}

// AwaitSynced waits until kubelet has synced p (made or killed what it
// had to, or found nothing to do) after log line from.
func (k *Kubelet) AwaitSynced(t testing.TB, p Pod, from int) {
	t.Helper()
	k.Log.Await(t, from, Wait, func(l string) bool {
		return strings.Contains(l, `"SyncPod exit" pod="default/`+p.FullName()+`"`)
	})
}

// AwaitTerminated waits until kubelet has stopped p (its containers and
// sandbox, the CNI DEL included) after log line from.
func (k *Kubelet) AwaitTerminated(t testing.TB, p Pod, from int) {
	t.Helper()
	k.Log.Await(t, from, Wait, func(l string) bool {
		return strings.Contains(l, `"SyncTerminatingPod exit" pod="default/`+p.FullName()+`"`)
	})
}

// LogTime is the time of a kubelet log line ("I1207 02:42:12.383833 ...":
// month, day and time of day, UTC), in year 0.
func LogTime(t testing.TB, line string) time.Time {
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

// unmountUnder unmounts what kubelet mounted under its root directory
// (it makes the directory a mount of its own), deepest first.
func unmountUnder(t testing.TB, dir string) {
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
