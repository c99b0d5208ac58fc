//go:build kernel

package podman

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/hook"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	. "github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// deployDir is the repository's deploy/podman, the files an admin copies.
func deployDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "podman")
}

var serve = []string{"/bin/canapp", "serve", "can0"}

func frame(id uint32, data ...byte) kerneltest.Frame { return kerneltest.Frame{ID: id, Data: data} }

// One podman for every case: its start and the image load cost tens of
// seconds under emulation.
func TestPodman(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	p := StartPodman(t, deployDir(t))
	ecu := kerneltest.Open(t, nil, ecuIf)

	// The entrypoint fails at once without can0 (exit 3): with no request
	// the hooks leave the container alone, and it fails.
	t.Run("NoRequestUntouched", func(t *testing.T) {
		out, code := p.Run(t, "run", "--rm", "--network", "none", "-e", "OTHER=1", ImageRef, "/bin/canapp", "check", "can0")
		if code != 3 {
			t.Fatalf("without a request: exit %d, want 3 (no can0): %s", code, out)
		}
		leftover.RequireNone(t, record.DefaultDir)
	})

	// The annotation: can0 before the entrypoint, frames both ways with
	// the ECU, nothing left after podman rm.
	for _, tc := range []struct{ name, flag, value string }{
		{"Annotation", "--annotation", hook.Annotation + "=" + bus},
		{"Env", "-e", hook.EnvVar + "=" + bus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "app-" + strings.ToLower(tc.name)
			run := p.Start(t, append([]string{"run", "--name", name, "--network", "none", tc.flag, tc.value, ImageRef}, serve...)...)
			run.WaitLine(t, "ready", Wait)
			ecu.Send(t, frame(0x123, 1, 2))
			ecu.Send(t, kerneltest.Frame{ID: 0x18DAF110, Extended: true, Data: []byte{3}})
			ecu.Expect(t, []kerneltest.Frame{frame(0x124, 1, 2), {ID: 0x18DAF111, Extended: true, Data: []byte{3}}}, Wait)
			if left := leftover.Describe(t, record.DefaultDir); !strings.Contains(left, "link kcan") {
				t.Fatalf("running: want our host end, have %q", left)
			}
			p.Must(t, "rm", "-f", "-t", "0", name)
			run.Wait(t, Wait)
			leftover.RequireNone(t, record.DefaultDir)
		})
	}

	// Both given: the annotation is the request (KANTO_CAN names a bus
	// that does not exist and would fail the start).
	t.Run("AnnotationBeforeEnv", func(t *testing.T) {
		out, code := p.Run(t, "run", "--rm", "--network", "none", "--annotation", hook.Annotation+"="+bus, "-e", hook.EnvVar+"=can7", ImageRef, "/bin/canapp", "check", "can0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		leftover.RequireNone(t, record.DefaultDir)
	})

	// Bad requests fail podman run with kanto-can's line, naming the bus;
	// nothing is left.
	for _, tc := range []struct{ name, flag, value, want string }{
		{"UnknownBus", "--annotation", hook.Annotation + "=can7", "host bus can7 does not exist"},
		// Quoted whole: podman's --annotation splits a value at commas.
		{"MalformedAnnotation", "--annotation", `"` + hook.Annotation + "=" + bus + `,dir=up"`, "annotation io.kanto-can.buses: bus 1"},
		// Not quoted: podman makes rx=7E8 an annotation of its own; the
		// request would receive every id. Refused, with the way to quote.
		{"SplitAnnotation", "--annotation", hook.Annotation + "=" + bus + ",rx=7E8", `--annotation '"io.kanto-can.buses=can0,rx=7E8"'`},
		{"MalformedEnv", "-e", hook.EnvVar + "=" + bus + ",rx=800", "KANTO_CAN: bus 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := p.Run(t, "run", "--rm", "--network", "none", tc.flag, tc.value, ImageRef, "/bin/canapp", "check", "can0")
			RequireRefused(t, "podman run", out, code, "kanto-can: ", tc.want)
		})
	}

	t.Run("NotGranted", func(t *testing.T) {
		Policy(t, `{"buses": {"`+bus+`": {}, "`+ecuIf+`": {}}, "default": {"buses": {"`+bus+`": {}}}}`)
		out, code := p.Run(t, "run", "--rm", "--network", "none", "--annotation", hook.Annotation+"="+ecuIf, ImageRef, "/bin/canapp", "check", "can0")
		RequireRefused(t, "podman run", out, code, "may not use bus "+ecuIf)
	})
}
