//go:build kernel

package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kubetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// BenchmarkStaticPod measures a static pod's start by a real kubelet
// (kubetest: Kubernetes v1.37, standalone), from its manifest written to
// its entrypoint's first line ("ready"), reporting medians:
//   - plain: a pod network of bridge + host-local;
//   - kanto-can-cni: the same with kanto-can-cni chained, giving the pod
//     the host's can0 (an emulated Kvaser controller).
//
// Each variant has its containerd and its kubelet (on other ports); the
// two alternate their order in every iteration. Removing the pod is not
// timed: the next iteration starts once kubelet has stopped the pod, its
// sandbox's DEL included (and kanto-can-cni's DEL has left nothing).
func BenchmarkStaticPod(b *testing.B) {
	kerneltest.Kvaser(b)
	variants := []struct {
		name string
		k    *kubetest.Kubelet
		r    *kubetest.CRI
	}{{name: "plain"}, {name: "kanto-can-cni"}}
	for v := range variants {
		variants[v].r = kubetest.StartCRI(b, podNetwork(b, v))
		variants[v].k = kubetest.StartKubeletPorts(b, variants[v].r, kubetest.Ports{Server: 10250 + 10*v})
	}
	times := make([][]time.Duration, len(variants))
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, v := range order {
			k := variants[v].k
			// The same entrypoint in both: it says "ready" at once; with the
			// plugin, can0 is there before it runs.
			p := kubetest.Pod{Name: fmt.Sprintf("bench%d", i), Command: []string{"/bin/busybox", "sh", "-c", "echo ready; exec sleep 1000000"}}
			start := time.Now()
			k.Run(b, p)
			k.AwaitLog(b, p, 0, "ready")
			times[v] = append(times[v], time.Since(start))
			if recs, _ := record.List(record.DefaultDir); v == 1 && len(recs) != 1 {
				b.Fatalf("the pod with kanto-can-cni has %d attachments, want 1", len(recs))
			}
			k.Remove(b, p)
			if v == 1 {
				leftover.AwaitNone(b, record.DefaultDir, kubetest.Wait)
			}
		}
	}
	names := make([]string, len(variants))
	for v, variant := range variants {
		names[v] = variant.name
	}
	reportStarts(b, names, times)
}
