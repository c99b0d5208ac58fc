//go:build kernel

package podman

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	. "github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// canNetwork is a podman network (a CNI conflist) as an admin would write
// it: bridge + host-local (a documentation range: nothing leaves the
// guest), then kanto-can-cni giving every container of the network bus.
func canNetwork(name, bridge, bus, dataDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "ipam": {"type": "host-local", "subnet": "192.0.2.0/24", "dataDir": %q}},
    {"type": "kanto-can-cni", "buses": [%q]}
  ]
}`, name, bridge, dataDir, bus)
}

// podman's CNI backend runs a network of ours: `podman run --network
// kanto-can` gets can0 from kanto-can-cni chained after the bridge, before
// its entrypoint; frames go both ways with the ECU; podman rm (CNI DEL)
// leaves nothing. A bus that does not exist, or that the policy does not
// grant the container (by its name: podman gives it as K8S_POD_NAME),
// fails podman run with the plugin's error naming the bus, and leaves
// nothing.
func TestPodmanCNINetwork(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	confDir := t.TempDir()
	for _, n := range []struct{ name, bridge, bus string }{
		{"kanto-can", "kcnibr0", bus},
		{"kanto-can-gone", "kcnibr1", "can7"},
		{"kanto-can-ecu", "kcnibr2", ecuIf},
	} {
		if err := os.WriteFile(filepath.Join(confDir, n.name+".conflist"), []byte(canNetwork(n.name, n.bridge, n.bus, t.TempDir())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// containers.conf: the CNI backend (podman 4.3's default is netavark,
	// which has no plugins), its config dir and where the plugins are.
	containersConf := filepath.Join(t.TempDir(), "containers.conf")
	conf := fmt.Sprintf("[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = %q\ncni_plugin_dirs = [%q]\n", confDir, CNIBinDir(t))
	if err := os.WriteFile(containersConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Set before podman starts: its clean-up (rm -af: CNI DEL) runs with it.
	t.Setenv("CONTAINERS_CONF", containersConf)
	p := StartPodman(t, deployDir(t))
	ecu := kerneltest.Open(t, nil, ecuIf)

	if out := p.Must(t, "network", "ls", "--format", "{{.Name}}"); !strings.Contains(out, "kanto-can\n") {
		t.Fatalf("podman network ls does not list kanto-can:\n%s", out)
	}

	t.Run("Network", func(t *testing.T) {
		run := p.Start(t, append([]string{"run", "--name", "cni-app", "--network", "kanto-can", ImageRef}, serve...)...)
		run.WaitLine(t, "ready", Wait)
		ecu.Send(t, frame(0x321, 4))
		ecu.Expect(t, []kerneltest.Frame{frame(0x322, 4)}, Wait)
		// The bridge's interface is there too: the chain ran whole.
		if out := p.Must(t, "exec", "cni-app", "/bin/busybox", "ip", "addr", "show", "eth0"); !strings.Contains(out, "192.0.2.") {
			t.Errorf("eth0 has no address of the bridge's range:\n%s", out)
		}
		if left := leftover.Describe(t, record.DefaultDir); !strings.Contains(left, "link kcan") {
			t.Fatalf("running: want our host end, have %q", left)
		}
		p.Must(t, "rm", "-f", "-t", "0", "cni-app")
		run.Wait(t, Wait)
		leftover.RequireNone(t, record.DefaultDir)
	})

	for _, tc := range []struct{ name, network, policy, want string }{
		{"UnknownBus", "kanto-can-gone", "", "host bus can7 does not exist"},
		{"NotGranted", "kanto-can-ecu", `{"buses": {"` + bus + `": {}, "` + ecuIf + `": {}}, "containers": [{"match": "granted-*", "buses": {"` + ecuIf + `": {}}}], "default": {"buses": {"` + bus + `": {}}}}`, "may not use bus " + ecuIf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.policy != "" {
				Policy(t, tc.policy)
			}
			out, code := p.Run(t, "run", "--rm", "--name", "refused-app", "--network", tc.network, ImageRef, "/bin/canapp", "check", "can0")
			RequireRefused(t, "podman run", out, code, tc.want)
		})
	}
	// The same network and policy grant the container the policy names.
	t.Run("Granted", func(t *testing.T) {
		Policy(t, `{"buses": {"`+ecuIf+`": {}}, "containers": [{"match": "granted-*", "buses": {"`+ecuIf+`": {}}}]}`)
		out, code := p.Run(t, "run", "--rm", "--name", "granted-app", "--network", "kanto-can-ecu", ImageRef, "/bin/canapp", "check", ecuIf)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		leftover.RequireNone(t, record.DefaultDir)
	})
}
