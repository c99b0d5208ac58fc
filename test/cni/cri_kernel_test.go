//go:build kernel

package cni

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Images of the CRI tests, imported into k8s.io as if pulled.
const (
	appImage     = "docker.io/kanto-can/app:1"
	sandboxImage = "docker.io/kanto-can/pause:1"
	criNamespace = "k8s.io"
)

// cri is containerd with its CRI plugin and a CNI conf dir of the test's,
// with a client as kubelet's.
type cri struct {
	c       *ctrtest.Containerd
	rt      runtimeapi.RuntimeServiceClient
	confDir string
	logDir  string
	removed map[string]bool // pods the test removed itself
}

// chainedCAN is kanto-can-cni's entry in the pod network: every pod gets
// can0.
const chainedCAN = `{"type": "kanto-can-cni", "buses": ["can0"]}`

// conflist writes the pod network: bridge + host-local (192.0.2.0/24),
// with canPlugin (kanto-can-cni's entry, "" for none) chained.
func conflist(canPlugin string, dataDir string) string {
	can := ""
	if canPlugin != "" {
		can = ",\n    " + canPlugin
	}
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "192.0.2.0/24", "dataDir": %q}}%s
  ]
}`, dataDir, can)
}

// startCRI starts containerd with its CRI on a pod network with canPlugin
// chained (conflist).
func startCRI(t testing.TB, canPlugin string) *cri {
	t.Helper()
	bin := enginetest.CNIBinDir(t)
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "10-pods.conflist"), []byte(conflist(canPlugin, t.TempDir())), 0o644); err != nil {
		t.Fatal(err)
	}
	c := ctrtest.StartContainerd(t, ctrtest.WithCRI(ctrtest.CRI{SandboxImage: sandboxImage, BinDir: bin, ConfDir: conf}))
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)}
	ctrtest.BuildImageCmd(t, c, criNamespace, sandboxImage, files, []string{"/bin/sleep", "1000000"})
	ctrtest.BuildImage(t, c, criNamespace, appImage, files)
	conn, err := grpc.NewClient("unix://"+c.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &cri{c: c, rt: runtimeapi.NewRuntimeServiceClient(conn), confDir: conf, logDir: t.TempDir(), removed: map[string]bool{}}
}

func criCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

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
	resp, err := r.rt.RunPodSandbox(criCtx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\n%s", err, tail(r.c.Log(), 30))
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
	if _, err := r.rt.StopPodSandbox(criCtx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if _, err := r.rt.RemovePodSandbox(criCtx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
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

	st, err := r.rt.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
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
		Image:    &runtimeapi.ImageSpec{Image: appImage},
		Command:  []string{"/bin/canapp", "serve", "can0"},
		LogPath:  "canapp.log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
	cr, err := r.rt.CreateContainer(criCtx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: id, Config: cc, SandboxConfig: sb})
	if err != nil {
		t.Fatalf("CreateContainer: %v\n%s", err, tail(r.c.Log(), 30))
	}
	if _, err := r.rt.StartContainer(criCtx(t), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v\n%s", err, tail(r.c.Log(), 30))
	}
	waitFile(t, filepath.Join(sb.LogDirectory, "canapp.log"), "ready", 60*time.Second)

	e := kerneltest.Open(t, nil, ecu)
	defer e.Close()
	for i, f := range []kerneltest.Frame{{ID: 0x123, Data: []byte{0xCA, 0xFE}}, {ID: 0x7DF, Data: []byte{2, 1, 0}}} {
		e.Send(t, f)
		want := f
		want.ID++
		e.Expect(t, []kerneltest.Frame{want}, 10*time.Second)
		t.Logf("frame %d: %s answered by %s", i, f, want)
	}

	if _, err := r.rt.StopContainer(criCtx(t), &runtimeapi.StopContainerRequest{ContainerId: cr.ContainerId, Timeout: 0}); err != nil {
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
	d := kerneltest.StartDaemon(t, 60*time.Second, "--containerd-address="+r.c.Address())
	id := r.runPod(t, r.sandboxConfig("doomed", "uid-doomed"))
	links, _ := leftover.Ours(t)
	if len(links) != 1 {
		t.Fatalf("want one host end for the pod, got %v", links)
	}
	// Kill the sandbox's task (ctr as a witness tool).
	if _, errs, code := r.c.Ctr(t, "-n", criNamespace, "tasks", "kill", "-s", "SIGKILL", id); code != 0 {
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
