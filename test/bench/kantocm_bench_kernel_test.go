//go:build kernel

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

// BenchmarkKantoStart measures a container's start with Eclipse Kanto's
// own container-management, from `kanto-cm start -n NAME` to the
// entrypoint's first line in the container's log, reporting medians:
//   - plain: no CAN;
//   - hook: KANTO_CAN=benchbus3:can0 and kanto-can's hooks in the manifest;
//   - wrapper: only KANTO_CAN, with kanto-can installed as runc (so it runs
//     for every runc call: create and start within the measurement).
//
// One Kanto serves all three: containerd finds "runc" first in a directory
// whose runc link points at the real runc (plain, hook) or at kanto-can
// (wrapper), switched between variants, so every variant pays only its
// own costs. The three alternate in every iteration; create and remove are
// not timed.
func BenchmarkKantoStart(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	kerneltest.VCAN(b, "benchbus3", 72)
	realRunc, err := exec.LookPath("runc")
	if err != nil {
		b.Fatal(err)
	}
	wrapDir := b.TempDir()
	link := filepath.Join(wrapDir, "runc")
	useRunc := func(target string) {
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			b.Fatal(err)
		}
	}
	useRunc(realRunc)
	const ref = "docker.io/kanto-can/bench:1"
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(b)}
	k := kantotest.Start(b, kantotest.WithPath(wrapDir), kantotest.WithImage(ref, files))

	manifest := func(name string, env []string, hooks bool) map[string]any {
		m := map[string]any{
			"container_name": name,
			"image":          map[string]any{"name": ref},
			"config":         map[string]any{"env": env, "cmd": []string{"/bin/sh", "-c", "echo running; exec /bin/busybox sleep 600"}},
		}
		if hooks {
			m["hooks"] = []map[string]any{
				{"path": kc, "args": []string{"kanto-can", "hook", "prestart"}, "type": 0},
				{"path": kc, "args": []string{"kanto-can", "hook", "poststop"}, "type": 2},
			}
		}
		return m
	}
	can := []string{"KANTO_CAN=benchbus3:can0"}
	variants := []struct {
		name  string
		runc  string
		env   []string
		hooks bool
	}{
		{"plain", realRunc, nil, false},
		{"hook", realRunc, can, true},
		{"wrapper", kc, can, false},
	}
	times := make([][]time.Duration, len(variants))
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		for v, variant := range variants {
			useRunc(variant.runc)
			c := k.CreateJSON(b, manifest(fmt.Sprintf("%s-%d", variant.name, i), variant.env, variant.hooks))
			start := time.Now()
			k.Start(b, c.Name)
			k.WaitLog(b, c.ID, "running", 1, time.Minute)
			times[v] = append(times[v], time.Since(start))
			k.Remove(b, c.Name)
		}
	}
	names := make([]string, len(variants))
	for v, variant := range variants {
		names[v] = variant.name
	}
	reportStarts(b, names, times)
}
