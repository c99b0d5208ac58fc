//go:build kernel

package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/record"
)

// The plugin in bridge mode (the policy's "bridge": "always", as a kernel
// without vxcan would have it): ADD gives the pod a vcan can0 and returns
// once kanto-can-daemon bridges it (frames both ways with the ECU at
// once); CHECK passes; DEL leaves nothing, and the daemon's bridge ends.
func TestChainedBridged(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	rt, _ := runtime(t)
	records := t.TempDir()
	pol := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(pol, []byte(`{"buses": {"can0": {"bridge": "always"}}, "default": {"buses": {"can0": {}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := kerneltest.StartDaemon(t, 10*time.Second, "--records="+records, "--containerd-address=")
	list := chained(t, records, fmt.Sprintf(`, "policy": %q`, pol))
	ns := kerneltest.NewNS(t)
	conf := &libcni.RuntimeConf{ContainerID: "sandbox-bridged", NetNS: ns.Path(), IfName: "eth0", Args: podArgs("bridged")}

	if _, err := rt.AddNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if in := insideLinks(t, ns); in["can0"].Kind != "vcan" || in["eth0"].Name == "" {
		t.Fatalf("pod's namespace: want can0 (vcan, bridged) and eth0, got %v", in)
	}
	frames(t, ns, ecu)
	if err := rt.CheckNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	recs, err := record.List(records)
	if err != nil || len(recs) != 1 || recs[0].Bridge == nil || recs[0].Container != "sandbox-bridged" {
		t.Fatalf("records: %+v, %v", recs, err)
	}
	if err := rt.DelNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	d.AwaitLogEver(t, `msg="bridge `) // stopped, or ended as its vcan went first
	requireNothingOfOurs(t, records)
	if _, ok := insideLinks(t, ns)["can0"]; ok {
		t.Fatal("can0 still in the pod after DEL")
	}
}
