package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// Pod is a static pod: one container, "app", of AppImage running Command,
// restarted whenever it ends.
type Pod struct {
	Name        string
	Command     []string
	Annotations map[string]string
}

// FullName is the pod's name on the node (kubelet appends the node's).
func (p Pod) FullName() string { return p.Name + "-" + NodeName }

// manifest is p as a static pod's YAML.
func (p Pod) manifest() string {
	var ann strings.Builder
	if len(p.Annotations) > 0 {
		keys := make([]string, 0, len(p.Annotations))
		for k := range p.Annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ann.WriteString("\n  annotations:")
		for _, k := range keys {
			fmt.Fprintf(&ann, "\n    %q: %q", k, p.Annotations[k])
		}
	}
	cmd := make([]string, len(p.Command))
	for i, a := range p.Command {
		cmd[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`apiVersion: v1
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
    command: [%s]
`, p.Name, ann.String(), AppImage, strings.Join(cmd, ", "))
}

// Run writes p's manifest into the static pod directory (whole, by a
// rename: kubelet watches the directory).
func (k *Kubelet) Run(t testing.TB, p Pod) {
	t.Helper()
	tmp := filepath.Join(k.manifests, "."+p.Name+".tmp")
	if err := os.WriteFile(tmp, []byte(p.manifest()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.manifests, p.Name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// Remove deletes p's manifest and waits until kubelet has stopped the pod
// (its sandbox's CNI DEL included).
func (k *Kubelet) Remove(t testing.TB, p Pod) {
	t.Helper()
	from := k.Log.Len()
	if err := os.Remove(filepath.Join(k.manifests, p.Name+".yaml")); err != nil {
		t.Fatal(err)
	}
	k.AwaitTerminated(t, p, from)
}

// PodState is what the CRI shows of a pod: its ready sandbox and the app
// container in it (Attempt counts the pod's container restarts, across
// sandboxes).
type PodState struct {
	Sandbox, Container string
	Attempt            uint32
}

// State is p's state now, and whether its app container runs.
func (k *Kubelet) State(t testing.TB, p Pod) (PodState, bool) {
	t.Helper()
	sbs := k.r.ReadySandboxes(t, p.FullName())
	if len(sbs) != 1 {
		return PodState{}, false
	}
	c := k.r.Container(t, sbs[0].Id, "app")
	if c == nil {
		return PodState{Sandbox: sbs[0].Id}, false
	}
	return PodState{Sandbox: sbs[0].Id, Container: c.Id, Attempt: c.Metadata.Attempt}, c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}

// AwaitRunning waits until p has one ready sandbox whose app container
// runs and ok (nil: any) accepts the state, then until the app has said
// "ready" in its log.
func (k *Kubelet) AwaitRunning(t testing.TB, p Pod, ok func(PodState) bool) PodState {
	t.Helper()
	var st PodState
	k.Await(t, func() bool {
		var running bool
		st, running = k.State(t, p)
		return running && (ok == nil || ok(st))
	})
	k.AwaitLog(t, p, st.Attempt, "ready")
	return st
}

// AwaitLog waits, on inotify, until the app container's log of this
// attempt (kubelet's file under its podLogsDir) contains s, and returns
// the log.
func (k *Kubelet) AwaitLog(t testing.TB, p Pod, attempt uint32, s string) string {
	t.Helper()
	var path string
	var b []byte
	err := kerneltest.AwaitFiles(Wait, nil, func(add func(string, uint32)) {
		const changes = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MODIFY | unix.IN_CLOSE_WRITE
		add(k.podLogs, changes)
		dirs, _ := filepath.Glob(filepath.Join(k.podLogs, "default_"+p.FullName()+"_*"))
		for _, d := range dirs {
			add(d, changes)
			add(filepath.Join(d, "app"), changes)
		}
	}, func() bool {
		logs, _ := filepath.Glob(filepath.Join(k.podLogs, "default_"+p.FullName()+"_*", "app", fmt.Sprintf("%d.log", attempt)))
		if len(logs) != 1 {
			return false
		}
		path = logs[0]
		b, _ = os.ReadFile(path)
		return strings.Contains(string(b), s)
	})
	if err != nil {
		t.Fatalf("pod %s, attempt %d: no %q in its log %s: %v; it has:\n%s", p.FullName(), attempt, s, path, err, b)
	}
	return string(b)
}
