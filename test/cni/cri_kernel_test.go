//go:build kernel

package cni

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kubetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// chainedCAN is kanto-can-cni's entry in the pod network: every pod gets
// can0.
const chainedCAN = `{"type": "kanto-can-cni", "buses": ["can0"]}`

const criNamespace = kubetest.Namespace

// cri is containerd with its CRI, driven by the tests as kubelet drives it.
type cri struct {
	*kubetest.CRI
	logDir  string
	removed map[string]bool // pods the test removed itself
}

// startCRI starts containerd with its CRI on the pod network
// (kubetest.Conflist) with canPlugin chained.
func startCRI(t testing.TB, canPlugin string) *cri {
	t.Helper()
	return &cri{CRI: kubetest.StartCRI(t, kubetest.Conflist(canPlugin, t.TempDir())), logDir: t.TempDir(), removed: map[string]bool{}}
}

func criCtx(t testing.TB) context.Context { return kubetest.Ctx(t) }

func (r *cri) sandboxConfig(name, uid string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(r.logDir, uid),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// runPod runs a pod sandbox as kubelet does; the pod is stopped and
// removed at cleanup unless the test did.
func (r *cri) runPod(t testing.TB, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		t.Fatal(err)
	}
	resp, err := r.RT.RunPodSandbox(criCtx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\n%s", err, tail(r.C.Log(), 30))
	}
	id := resp.PodSandboxId
	t.Cleanup(func() {
		if !r.removed[id] {
			r.removePod(t, id)
		}
	})
	return id
}

func (r *cri) removePod(t testing.TB, id string) {
	t.Helper()
	r.removed[id] = true
	if _, err := r.RT.StopPodSandbox(criCtx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if _, err := r.RT.RemovePodSandbox(criCtx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestPodThroughCRI: a pod made through containerd's CRI, as kubelet
// makes it, with kanto-can-cni chained after bridge + host-local: its
// container's canapp answers the ECU's frames; the pod's removal leaves
// nothing.
func TestPodThroughCRI(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	r := startCRI(t, chainedCAN)
	sb := r.sandboxConfig("app", "uid-app")
	id := r.runPod(t, sb)

	st, err := r.RT.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatal(err)
	}
	if ip := st.GetStatus().GetNetwork().GetIp(); !strings.HasPrefix(ip, "192.0.2.") {
		t.Fatalf("pod IP %q: the bridge's result did not survive the chain", ip)
	}
	if !listed(t, "pod default/app", id) {
		t.Fatal("ls does not show the pod's attachment")
	}

	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "canapp"},
		Image:    &runtimeapi.ImageSpec{Image: kubetest.AppImage},
		Command:  []string{"/bin/canapp", "serve", "can0"},
		LogPath:  "canapp.log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
	cr, err := r.RT.CreateContainer(criCtx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: id, Config: cc, SandboxConfig: sb})
	if err != nil {
		t.Fatalf("CreateContainer: %v\n%s", err, tail(r.C.Log(), 30))
	}
	if _, err := r.RT.StartContainer(criCtx(t), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v\n%s", err, tail(r.C.Log(), 30))
	}
	waitFile(t, filepath.Join(sb.LogDirectory, "canapp.log"), "ready", 60*time.Second)

	exchange(t, ecu)

	if _, err := r.RT.StopContainer(criCtx(t), &runtimeapi.StopContainerRequest{ContainerId: cr.ContainerId, Timeout: 0}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	r.removePod(t, id)
	requireNothingOfOurs(t, record.DefaultDir)
}

// TestDaemonEndsAPodWhoseSandboxExited: the sandbox's task is killed
// behind the CRI's back; its namespace lives on (no DEL yet), and the
// daemon, on containerd's task exit event in k8s.io, removes the pod's
// attachment. The pod's removal afterwards (DEL twice) still succeeds.
func TestDaemonEndsAPodWhoseSandboxExited(t *testing.T) {
	kerneltest.Kvaser(t)
	r := startCRI(t, chainedCAN)
	d := kerneltest.StartDaemon(t, 60*time.Second, "--containerd-address="+r.C.Address())
	id := r.runPod(t, r.sandboxConfig("doomed", "uid-doomed"))
	links, _ := leftover.Ours(t)
	if len(links) != 1 {
		t.Fatalf("want one host end for the pod, got %v", links)
	}
	// Kill the sandbox's task (ctr as a witness tool).
	if _, errs, code := r.C.Ctr(t, "-n", criNamespace, "tasks", "kill", "-s", "SIGKILL", id); code != 0 {
		t.Fatalf("ctr tasks kill: %s", errs)
	}
	d.AwaitLog(t, "msg=reconciled", "removed="+links[0])
	if l, _ := leftover.Ours(t); len(l) != 0 {
		t.Fatalf("host ends after the sandbox exited: %v", l)
	}
	if recs, _ := record.List(record.DefaultDir); len(recs) != 0 {
		t.Fatalf("records after the sandbox exited: %+v", recs)
	}
	r.removePod(t, id)
	requireNothingOfOurs(t, record.DefaultDir)
}
