//go:build kernel

package docker

import (
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/hook"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	. "github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

var serve = []string{"/bin/canapp", "serve", "can0"}

func frame(id uint32, data ...byte) kerneltest.Frame { return kerneltest.Frame{ID: id, Data: data} }

// One dockerd for every case: its start and the image load cost tens of
// seconds under emulation.
func TestDocker(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	d := StartDocker(t)
	ecu := kerneltest.Open(t, nil, ecuIf)
	check := []string{"/bin/canapp", "check", "can0"}

	// The default runtime never calls kanto-can: KANTO_CAN alone does
	// nothing, the entrypoint finds no can0 (exit 3).
	t.Run("DefaultRuntimeUntouched", func(t *testing.T) {
		out, code := d.Run(t, append([]string{"run", "--rm", "-e", hook.EnvVar + "=" + bus, ImageRef}, check...)...)
		if code != 3 {
			t.Fatalf("default runtime: exit %d, want 3 (no can0): %s", code, out)
		}
		leftover.RequireNone(t, record.DefaultDir)
	})

	// kanto-can as the runtime without a request: plain runc.
	t.Run("RuntimeNoRequest", func(t *testing.T) {
		out, code := d.Run(t, append([]string{"run", "--rm", "--runtime", RuntimeName, ImageRef}, check...)...)
		if code != 3 {
			t.Fatalf("runtime kanto-can without KANTO_CAN: exit %d, want 3 (no can0): %s", code, out)
		}
		leftover.RequireNone(t, record.DefaultDir)
	})

	// The default bridge network and --network none: can0 before the
	// entrypoint, frames both ways, nothing left after docker rm.
	for _, network := range []string{"bridge", "none"} {
		t.Run("Runtime/"+network, func(t *testing.T) {
			name := "app-" + network
			run := d.Start(t, append([]string{"run", "--name", name, "--network", network, "--runtime", RuntimeName, "-e", hook.EnvVar + "=" + bus, ImageRef}, serve...)...)
			run.WaitLine(t, "ready", Wait)
			ecu.Send(t, frame(0x123, 1, 2))
			ecu.Send(t, kerneltest.Frame{ID: 0x18DAF110, Extended: true, Data: []byte{3}})
			ecu.Expect(t, []kerneltest.Frame{frame(0x124, 1, 2), {ID: 0x18DAF111, Extended: true, Data: []byte{3}}}, Wait)
			if left := leftover.Describe(t, record.DefaultDir); !strings.Contains(left, "link kcan") {
				t.Fatalf("running: want our host end, have %q", left)
			}
			if network == "bridge" {
				// Docker's own network is there too.
				out := d.Must(t, "exec", name, "ip", "-o", "link")
				if !strings.Contains(out, "eth0") || !strings.Contains(out, "can0") {
					t.Fatalf("want eth0 and can0 in the container:\n%s", out)
				}
			}
			d.Must(t, "rm", "-f", name)
			run.Wait(t, Wait)
			leftover.RequireNone(t, record.DefaultDir)
		})
	}

	// A stop and a start again: detached at stop, attached at the start.
	t.Run("StopStart", func(t *testing.T) {
		d.Must(t, append([]string{"create", "--name", "restarted", "--network", "none", "--runtime", RuntimeName, "-e", hook.EnvVar + "=" + bus, ImageRef}, check...)...)
		for i := 0; i < 2; i++ {
			out, code := d.Run(t, "start", "-a", "restarted")
			if code != 0 {
				t.Fatalf("start %d: exit %d: %s", i+1, code, out)
			}
			leftover.RequireNone(t, record.DefaultDir)
		}
		d.Must(t, "rm", "-f", "restarted")
		leftover.RequireNone(t, record.DefaultDir)
	})

	// Bad requests fail docker run with kanto-can's line, naming the bus;
	// nothing is left.
	for _, tc := range []struct{ name, value, want string }{
		{"UnknownBus", "can7", "host bus can7 does not exist"},
		{"Malformed", bus + ",rx=800", "KANTO_CAN: bus 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := d.Run(t, append([]string{"run", "--rm", "--network", "none", "--runtime", RuntimeName, "-e", hook.EnvVar + "=" + tc.value, ImageRef}, check...)...)
			RequireRefused(t, "docker run", out, code, "kanto-can: ", tc.want)
		})
	}

	t.Run("NotGranted", func(t *testing.T) {
		Policy(t, `{"buses": {"`+bus+`": {}, "`+ecuIf+`": {}}, "default": {"buses": {"`+bus+`": {}}}}`)
		out, code := d.Run(t, append([]string{"run", "--rm", "--network", "none", "--runtime", RuntimeName, "-e", hook.EnvVar + "=" + ecuIf, ImageRef}, check...)...)
		RequireRefused(t, "docker run", out, code, "may not use bus "+ecuIf)
	})
}
