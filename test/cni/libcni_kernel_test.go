//go:build kernel

package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// chained is a conflist as a cluster's: bridge + host-local, then
// kanto-can-cni giving every pod the host's can0.
func chained(t *testing.T, records string, extra string) *libcni.NetworkConfigList {
	t.Helper()
	list, err := libcni.NetworkConfFromBytes([]byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    {"type": "bridge", "bridge": "cnitest0", "ipam": {"type": "host-local", "subnet": "192.0.2.0/24", "dataDir": %q}},
    {"type": "kanto-can-cni", "buses": ["can0"], "records": %q %s}
  ]
}`, t.TempDir(), records, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// standalone is a NetworkAttachmentDefinition's config: the plugin alone.
func standalone(t *testing.T, conf string) *libcni.PluginConfig {
	t.Helper()
	c, err := libcni.NetworkPluginConfFromBytes([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func podArgs(name string) [][2]string {
	return [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", name}, {"K8S_POD_INFRA_CONTAINER_ID", "x"}}
}

// frames checks both ways between the pod's can0 and the emulated ECU.
func frames(t *testing.T, ns *kerneltest.NS, ecu string) {
	t.Helper()
	inside := kerneltest.Open(t, ns, "can0")
	defer inside.Close()
	e := kerneltest.Open(t, nil, ecu)
	defer e.Close()
	down := kerneltest.Frame{ID: 0x7E8, Data: []byte{1, 2, 3}}
	e.Send(t, down)
	inside.Expect(t, []kerneltest.Frame{down}, 5*time.Second)
	up := kerneltest.Frame{ID: 0x7E0, Data: []byte{4, 5}}
	inside.Send(t, up)
	e.Expect(t, []kerneltest.Frame{up}, 5*time.Second)
}

func TestChainedAddCheckDel(t *testing.T) {
	_, ecu := kerneltest.Kvaser(t)
	rt, dir := runtime(t)
	records := t.TempDir()
	list := chained(t, records, "")
	ns := kerneltest.NewNS(t)
	conf := &libcni.RuntimeConf{ContainerID: "sandbox-chained", NetNS: ns.Path(), IfName: "eth0", Args: podArgs("app")}

	res, err := rt.AddNetworkList(ctx(t), list, conf)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	// prevResult survives: the bridge's eth0 and its address.
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IPs) != 1 || !strings.HasPrefix(r.IPs[0].Address.String(), "192.0.2.") {
		t.Fatalf("result lost the bridge's address: %s", jsonOf(t, r))
	}
	hasEth0 := false
	for _, i := range r.Interfaces {
		hasEth0 = hasEth0 || (i.Name == "eth0" && i.Sandbox == ns.Path())
		if i.Name == "can0" {
			t.Errorf("chained: the CAN interface is not added to the result, got %+v", i)
		}
	}
	if !hasEth0 {
		t.Fatalf("result has no eth0 in the pod: %s", jsonOf(t, r))
	}
	in := insideLinks(t, ns)
	if in["can0"].Kind != "vxcan" || in["eth0"].Name == "" {
		t.Fatalf("pod's namespace: want can0 (vxcan) and eth0, got %v", in)
	}
	frames(t, ns, ecu)
	if err := rt.CheckNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	// ls names the pod.
	if !listed(t, "pod default/app", "sandbox-chained") {
		t.Fatal("ls -o json does not name the pod")
	}
	recs, err := record.List(records)
	if err != nil || len(recs) != 1 || !recs[0].EndsWithTask || recs[0].Container != "sandbox-chained" {
		t.Fatalf("records: %+v, %v", recs, err)
	}

	// ADD twice (ours, with the same prevResult): the same state, the
	// same result.
	links1, rules1 := leftover.Ours(t)
	again, err := addPlugin(t, dir, list, 1, res, conf)
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	if ja, jr := jsonOf(t, again), jsonOf(t, res); ja != jr {
		t.Fatalf("second ADD's result:\n%s\nwant prevResult unchanged:\n%s", ja, jr)
	}
	links2, rules2 := leftover.Ours(t)
	if fmt.Sprint(links1) != fmt.Sprint(links2) || len(rules1) != len(rules2) || len(rules1) != 2 {
		t.Fatalf("second ADD changed the state: %v %d rules -> %v %d rules", links1, len(rules1), links2, len(rules2))
	}

	// A rule deleted behind our back: CHECK fails, naming it.
	gw, err := cangw.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if err := gw.Delete(rules2[0]); err != nil {
		t.Fatal(err)
	}
	err = rt.CheckNetworkList(ctx(t), list, conf)
	if err == nil {
		t.Fatal("CHECK passed with a gateway rule missing")
	}
	if e := cniError(t, err); e.Code != 102 || !strings.Contains(e.Msg, "gateway rule") || !strings.Contains(e.Msg, "missing") {
		t.Fatalf("CHECK: want code 102 naming the missing rule, got %d %q", e.Code, e.Msg)
	}
	// ADD puts it back.
	if _, err := addPlugin(t, dir, list, 1, res, conf); err != nil {
		t.Fatalf("ADD after the loss: %v", err)
	}
	if err := rt.CheckNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("CHECK after ADD repaired: %v", err)
	}

	// DEL twice; the second as containerd's: no netns.
	if err := rt.DelNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	requireNothingOfOurs(t, records)
	if _, ok := insideLinks(t, ns)["can0"]; ok {
		t.Fatal("can0 still in the pod after DEL")
	}
	conf.NetNS = ""
	if err := rt.DelNetworkList(ctx(t), list, conf); err != nil {
		t.Fatalf("second DEL (no netns): %v", err)
	}
	requireNothingOfOurs(t, records)
}

func TestStandaloneResultAndDelAfterTheNetnsIsGone(t *testing.T) {
	bus, _ := kerneltest.Kvaser(t)
	rt, _ := runtime(t)
	records := t.TempDir()
	net := standalone(t, fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "can", "type": "kanto-can-cni", "buses": [%q], "records": %q}`, bus+":vcan7,dir=rx", records))
	ns := kerneltest.NewNS(t)
	conf := &libcni.RuntimeConf{ContainerID: "sandbox-alone", NetNS: ns.Path(), IfName: "net1", Args: podArgs("alone")}
	res, err := rt.AddNetwork(ctx(t), net, conf)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "vcan7" || r.Interfaces[0].Sandbox != ns.Path() || len(r.IPs) != 0 {
		t.Fatalf("standalone result: want the interface vcan7 in the pod, no IPs; got %s", jsonOf(t, r))
	}
	if err := rt.CheckNetwork(ctx(t), net, conf); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	// ADD twice: the same result and state.
	links1, rules1 := leftover.Ours(t)
	res2, err := rt.AddNetwork(ctx(t), net, conf)
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	if a, b := jsonOf(t, res2), jsonOf(t, res); a != b {
		t.Fatalf("second ADD's result %s, want %s", a, b)
	}
	if links2, rules2 := leftover.Ours(t); fmt.Sprint(links1) != fmt.Sprint(links2) || len(rules1) != len(rules2) || len(rules1) != 1 {
		t.Fatalf("second ADD changed the state: %v %d rules -> %v %d rules", links1, len(rules1), links2, len(rules2))
	}
	// The pod's namespace goes (the kernel takes the pair and its rules);
	// containerd's DEL then comes without a netns, twice.
	links, _ := leftover.Ours(t)
	if len(links) != 1 {
		t.Fatalf("host ends: %v", links)
	}
	ns.Delete(t)
	kerneltest.AwaitLinkGone(t, links[0], 30*time.Second)
	if links, _ := leftover.Ours(t); len(links) != 0 {
		t.Fatalf("host ends after the namespace went: %v", links)
	}
	if recs, _ := record.List(records); len(recs) != 1 {
		t.Fatalf("the record must wait for DEL: %+v", recs)
	}
	conf.NetNS = ""
	for i := range 2 {
		if err := rt.DelNetwork(ctx(t), net, conf); err != nil {
			t.Fatalf("DEL %d without netns: %v", i+1, err)
		}
	}
	requireNothingOfOurs(t, records)
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBadInput: each bad input is a CNI error (code, msg) on stdout with a
// non-zero exit, and nothing is left behind.
func TestBadInput(t *testing.T) {
	bus, _ := kerneltest.Kvaser(t)
	dir := enginetest.CNIBinDir(t)
	records := t.TempDir()
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{
  "buses": {"can0": {}, "can1": {}},
  "containers": [{"match": "default/granted", "buses": {"can0": {"dir": "rx"}}}]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := kerneltest.NewNS(t)
	gone := kerneltest.NewNS(t)
	gonePath := gone.Path()
	gone.Delete(t)
	cases := []struct {
		name, conf, netns, args string
		code                    uint
		msg                     []string
	}{
		{"malformed JSON", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": ["can0"],}`, ns.Path(), "", 6,
			[]string{"invalid character"}},
		{"bad bus syntax", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": ["can0,dir=sideways"]}`, ns.Path(), "", 7,
			[]string{"buses[0]", "sideways"}},
		{"unknown key", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "bus": ["can0"]}`, ns.Path(), "", 7,
			[]string{`unknown key "bus"`}},
		{"buses not a list", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": "can0"}`, ns.Path(), "", 7,
			[]string{"buses", "string"}},
		{"unknown bus", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": ["nosuch0"]}`, ns.Path(), "", 101,
			[]string{"pod default/app", "nosuch0 does not exist"}},
		{"bad KANTO_CAN", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni"}`, ns.Path(), "KANTO_CAN=can0,rx=XYZ", 4,
			[]string{"KANTO_CAN", "XYZ"}},
		{"policy refuses the pod", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": ["can0"], "policy": "` + policy + `"}`, ns.Path(), "", 100,
			[]string{"may not use bus can0"}},
		{"policy refuses the direction", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": ["can0,dir=both"], "policy": "` + policy + `"}`, ns.Path(), "K8S_POD_NAME=granted", 100,
			[]string{"dir=both", "dir=rx"}},
		{"netns gone on ADD", `{"cniVersion": "1.0.0", "name": "x", "type": "kanto-can-cni", "buses": ["can0"]}`, gonePath, "", 8,
			[]string{gonePath}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := strings.Replace(c.conf, `"type": "kanto-can-cni"`, `"type": "kanto-can-cni", "records": "`+records+`"`, 1)
			args := "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=app"
			if c.args != "" {
				args += ";" + c.args
			}
			cmd := exec.Command(filepath.Join(dir, "kanto-can-cni"))
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=sandbox-bad", "CNI_NETNS=" + c.netns, "CNI_IFNAME=eth0",
				"CNI_PATH=" + dir, "CNI_ARGS=" + args}
			cmd.Stdin = strings.NewReader(conf)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatalf("ADD succeeded: %s", stdout.String())
			}
			var e struct {
				CNIVersion string `json:"cniVersion"`
				Code       uint   `json:"code"`
				Msg        string `json:"msg"`
				Details    string `json:"details"`
			}
			if jerr := json.Unmarshal(stdout.Bytes(), &e); jerr != nil || e.Code == 0 || e.Msg == "" {
				t.Fatalf("stdout is not a CNI error (%v): %q; stderr %q", jerr, stdout.String(), stderr.String())
			}
			if c.code != 0 && e.Code != c.code {
				t.Errorf("code %d, want %d: %s", e.Code, c.code, e.Msg)
			}
			for _, m := range c.msg {
				if !strings.Contains(e.Msg+" "+e.Details, m) {
					t.Errorf("msg %q (details %q) does not name %q", e.Msg, e.Details, m)
				}
			}
			t.Logf("code %d: %s", e.Code, e.Msg)
			requireNothingOfOurs(t, records)
			if _, ok := insideLinks(t, ns)["can0"]; ok {
				t.Fatal("can0 in the namespace after a failed ADD")
			}
		})
	}
	_ = bus
}
