// Package kubetest runs Kubernetes' pods in kernel tests the way a node
// does: containerd with its CRI plugin on a pod network of the test's
// (a CNI conflist), and a real kubelet (Kubernetes v1.37, standalone:
// static pods from a directory, no API server) on it.
//
// Like package kerneltest, it is for tests built with the "kernel" build
// tag, which run only inside the QEMU guest of test/vm/run.sh. `make setup`
// unpacks the kubelet into .cache/k8s/ and make passes its path to the
// guest ($KANTO_CAN_KUBELET).
//
//	r := kubetest.StartCRI(t, kubetest.Conflist(`{"type": "kanto-can-cni", "buses": ["can0"]}`, dataDir))
//	k := kubetest.StartKubelet(t, r)
//	app := kubetest.Pod{Name: "canapp", Command: []string{"/bin/canapp", "serve", "can0"}}
//	k.Run(t, app)                                         // writes its manifest
//	st := k.AwaitRunning(t, app, nil)                     // its sandbox and container
//	k.Remove(t, app)                                      // kubelet stops and removes it
package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
)

// Images of the pods, imported into the CRI's namespace as if pulled: the
// sandbox's (busybox sleeping, as pause) and the app's (busybox and
// canapp).
const (
	AppImage     = "docker.io/kanto-can/app:1"
	SandboxImage = "docker.io/kanto-can/pause:1"
	Namespace    = "k8s.io" // containerd's namespace of the CRI
)

// CRI is containerd with its CRI plugin on a pod network of the test's,
// with a client as kubelet's.
type CRI struct {
	C  *ctrtest.Containerd
	RT runtimeapi.RuntimeServiceClient
}

// Conflist is a pod network: bridge + host-local (192.0.2.0/24), with
// canPlugin (a plugin's entry, "" for none) chained after them.
func Conflist(canPlugin, dataDir string) string {
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

// StartCRI starts containerd with its CRI on the pod network conflist
// (the CNI plugins from enginetest.CNIBinDir, kanto-can-cni among them),
// with the images imported.
func StartCRI(t testing.TB, conflist string) *CRI {
	t.Helper()
	bin := enginetest.CNIBinDir(t)
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "10-pods.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	c := ctrtest.StartContainerd(t, ctrtest.WithCRI(ctrtest.CRI{SandboxImage: SandboxImage, BinDir: bin, ConfDir: conf}))
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)}
	ctrtest.BuildImageCmd(t, c, Namespace, SandboxImage, files, []string{"/bin/sleep", "1000000"})
	ctrtest.BuildImage(t, c, Namespace, AppImage, files)
	conn, err := grpc.NewClient("unix://"+c.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &CRI{C: c, RT: runtimeapi.NewRuntimeServiceClient(conn)}
}

// Ctx is a context for one CRI call, cancelled at the test's end.
func Ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return c
}

// callTimeout bounds one CRI call.
const callTimeout = 2 * time.Minute

// ReadySandboxes lists the CRI's ready pod sandboxes: of one pod (by its
// kubelet name, NAME-NODE for a static pod) or, with name "", all.
func (r *CRI) ReadySandboxes(t testing.TB, name string) []*runtimeapi.PodSandbox {
	t.Helper()
	f := &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}
	if name != "" {
		f.LabelSelector = map[string]string{"io.kubernetes.pod.name": name}
	}
	// Called at every line of kubelet's log while a test waits: a context
	// of its own, not one more cleanup of the test's per call.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := r.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	return resp.Items
}

// Container is the newest container of a sandbox with this name, nil if
// none.
func (r *CRI) Container(t testing.TB, sandbox, name string) *runtimeapi.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := r.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandbox}})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	var newest *runtimeapi.Container
	for _, c := range resp.Containers {
		if c.Metadata.Name == name && (newest == nil || c.Metadata.Attempt > newest.Metadata.Attempt) {
			newest = c
		}
	}
	return newest
}

// Kill kills a task of the CRI's (a sandbox's or a container's) with
// SIGKILL, behind the CRI's back (ctr as a witness tool).
func (r *CRI) Kill(t testing.TB, id string) {
	t.Helper()
	if _, errs, code := r.C.Ctr(t, "-n", Namespace, "tasks", "kill", "-s", "SIGKILL", id); code != 0 {
		t.Fatalf("ctr tasks kill %s: %s", id, errs)
	}
}
