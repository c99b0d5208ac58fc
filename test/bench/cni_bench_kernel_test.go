//go:build kernel

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kubetest"
)

// BenchmarkPodSandbox measures a pod sandbox's creation through
// containerd's CRI, as kubelet asks for it (RunPodSandbox until it
// returns: the sandbox's network set up, its task started), reporting
// medians:
//   - plain: a conflist of bridge + host-local;
//   - kanto-can-cni: the same with kanto-can-cni chained, giving the pod
//     the host's can0 (an emulated Kvaser controller).
//
// Each variant has its containerd (CRI on, its own conf dir); the two
// alternate in every iteration. StopPodSandbox and RemovePodSandbox are
// not timed.
func BenchmarkPodSandbox(b *testing.B) {
	kerneltest.Kvaser(b)
	plugin := os.Getenv(enginetest.EnvCNI)
	variants := []struct {
		name string
		rt   runtimeapi.RuntimeServiceClient
	}{{name: "plain"}, {name: "kanto-can-cni"}}
	for v := range variants {
		variants[v].rt = kubetest.StartCRI(b, podNetwork(b, v)).RT
	}
	logs := b.TempDir()
	times := make([][]time.Duration, len(variants))
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		// Alternate the order: the kernel tears the last pod's namespace
		// down in the background, which taxes whichever runs next.
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, v := range order {
			variant := variants[v]
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			name := fmt.Sprintf("%s-%d", variant.name, i)
			cfg := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name},
				Hostname:     "pod",
				LogDirectory: filepath.Join(logs, name),
				Linux:        &runtimeapi.LinuxPodSandboxConfig{},
			}
			start := time.Now()
			resp, err := variant.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				cancel()
				b.Fatalf("%s: RunPodSandbox: %v", variant.name, err)
			}
			times[v] = append(times[v], time.Since(start))
			if _, err := variant.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
				b.Fatalf("%s: StopPodSandbox: %v", variant.name, err)
			}
			if _, err := variant.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
				b.Fatalf("%s: RemovePodSandbox: %v", variant.name, err)
			}
			cancel()
		}
	}
	names := make([]string, len(variants))
	for v, variant := range variants {
		names[v] = variant.name
	}
	reportStarts(b, names, times)
	b.ReportMetric(ms(median(pluginAdds(b, plugin, b.N))), "ms/plugin-ADD")
}

// pluginAdds times the plugin's ADD alone, as a runtime runs it (one
// process, the config on stdin), into a fresh namespace each time; DEL is
// not timed.
func pluginAdds(b *testing.B, plugin string, n int) []time.Duration {
	var out []time.Duration
	conf := `{"cniVersion": "1.0.0", "name": "can", "type": "kanto-can-cni", "buses": ["can0"]}`
	for i := 0; i < n; i++ {
		ns := kerneltest.NewNS(b)
		run := func(cmd string) time.Duration {
			c := exec.Command(plugin)
			c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=bench-" + fmt.Sprint(i), "CNI_NETNS=" + ns.Path(),
				"CNI_IFNAME=net1", "CNI_PATH=/usr/lib/cni", "CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench"}
			c.Stdin = strings.NewReader(conf)
			start := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v: %s", cmd, err, out)
			}
			return time.Since(start)
		}
		out = append(out, run("ADD"))
		run("DEL")
		ns.Delete(b)
	}
	return out
}

// podNetwork is variant v's pod network (its own bridge and half of
// 192.0.2.0/24, so that two run side by side): bridge + host-local, and
// for v 1 kanto-can-cni chained, giving each pod can0.
func podNetwork(b *testing.B, v int) string {
	can := ""
	if v == 1 {
		can = `, {"type": "kanto-can-cni", "buses": ["can0"]}`
	}
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "podbench%d", "ipam": {"type": "host-local", "subnet": "192.0.2.%d/25", "dataDir": %q}}%s]}`,
		v, 128*v, b.TempDir(), can)
}
