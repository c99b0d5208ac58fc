//go:build kernel

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

// BenchmarkContainerStart measures a container's start, from `ctr run` to
// its entrypoint running (its first output line), the way Kanto starts
// containers (containerd namespace kanto-cm, runc), reporting medians:
//   - plain: no CAN;
//   - hook: KANTO_CAN=benchbus2:can0 and kanto-can's hooks in the spec, as
//     from a Kanto manifest;
//   - wrapper: only KANTO_CAN, containerd finding kanto-can as runc first
//     (so the wrapper runs for every runc call: create, start, state, ...).
//
// The three alternate in every iteration. Stops are not timed.
func BenchmarkContainerStart(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	kerneltest.VCAN(b, "benchbus2", 72)
	wrapDir := b.TempDir()
	if err := os.Symlink(kc, filepath.Join(wrapDir, "runc")); err != nil {
		b.Fatal(err)
	}
	const ns, ref = "kanto-cm", "docker.io/kanto-can/bench:1"
	plain := ctrtest.StartContainerd(b, ctrtest.WithSnapshotter("native"))
	wrapped := ctrtest.StartContainerd(b, ctrtest.WithSnapshotter("native"), ctrtest.WithPath(wrapDir))
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(b)}
	ctrtest.BuildImage(b, plain, ns, ref, files)
	ctrtest.BuildImage(b, wrapped, ns, ref, files)
	hooks := ctrtest.Hooks{
		Prestart: []ctrtest.Hook{{Path: kc, Args: []string{"kanto-can", "hook", "prestart"}}},
		Poststop: []ctrtest.Hook{{Path: kc, Args: []string{"kanto-can", "hook", "poststop"}}},
	}
	args := []string{"/bin/sh", "-c", "echo running; exec /bin/busybox sleep 600"}
	variants := []struct {
		name string
		c    *ctrtest.Containerd
		spec ctrtest.Spec
	}{
		{"plain", plain, ctrtest.Spec{Image: ref, Args: args}},
		{"hook", plain, ctrtest.Spec{Image: ref, Args: args, Env: []string{"KANTO_CAN=benchbus2:can0"}, Hooks: hooks}},
		{"wrapper", wrapped, ctrtest.Spec{Image: ref, Args: args, Env: []string{"KANTO_CAN=benchbus2:can0"}}},
	}
	times := make([][]time.Duration, len(variants))
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		for v, variant := range variants {
			start := time.Now()
			ct := variant.c.Run(b, ns, fmt.Sprintf("%s-%d", variant.name, i), variant.spec)
			ct.WaitOutput(b, "running", time.Minute)
			times[v] = append(times[v], time.Since(start))
			ct.Stop(b)
		}
	}
	names := make([]string, len(variants))
	for v, variant := range variants {
		names[v] = variant.name
	}
	reportStarts(b, names, times)
}

// reportStarts reports the median start time of each variant and what the
// others add to the first (plain): ms/NAME, ms-added/NAME, %-added/NAME.
func reportStarts(b *testing.B, names []string, times [][]time.Duration) {
	base := median(times[0])
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(base), "ms/"+names[0])
	for v := 1; v < len(names); v++ {
		m := median(times[v])
		b.ReportMetric(ms(m), "ms/"+names[v])
		b.ReportMetric(ms(m-base), "ms-added/"+names[v])
		b.ReportMetric(100*float64(m-base)/float64(base), "%-added/"+names[v])
	}
}
