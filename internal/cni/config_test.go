package cni

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
)

func TestLoad(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"1.0.0","name":"can","type":"kanto-can-cni","buses":["can0","can1:vcan0,dir=rx,rx=7E8"],"policy":"/etc/p.json","records":"/run/r"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.buses) != 2 || c.buses[1].Inside != "vcan0" || c.buses[1].Dir.String() != "rx" {
		t.Fatalf("buses: %+v", c.buses)
	}
	if p, explicit := c.PolicyPath(); p != "/etc/p.json" || !explicit {
		t.Fatalf("policy %q %v", p, explicit)
	}
	if c.RecordsDir() != "/run/r" {
		t.Fatal(c.RecordsDir())
	}
	d, err := Load([]byte(`{"cniVersion":"1.0.0","name":"can","type":"kanto-can-cni"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p, explicit := d.PolicyPath(); p != policy.DefaultPath || explicit || d.RecordsDir() != record.DefaultDir {
		t.Fatalf("defaults: %q %v %q", p, explicit, d.RecordsDir())
	}
}

// The keys the CNI spec defines for a plugin's config, and those runtimes
// add, are not kanto-can-cni's but must be accepted.
func TestLoadStandardKeys(t *testing.T) {
	conf := `{"cniVersion":"1.1.0","cniVersions":["1.0.0","1.1.0"],"name":"can","type":"kanto-can-cni","buses":["can0"],
		"args":{"cni":{"buses":["can1"]},"other":{"x":1}},"ipMasq":false,"ipam":{},"dns":{"nameservers":["10.0.0.1"]},
		"runtimeConfig":{"portMappings":[]},"capabilities":{"portMappings":true},"disableCheck":false,"disableGC":false,
		"prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}]}}`
	if _, err := Load([]byte(conf)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{`{"cniVersion":"1.0.0","buses":["can0",]}`, "plugin config: line 1, column 39: invalid character ']'"},
		{`{"cniVersion":"1.0.0","buses":"can0"}`, "plugin config: buses: string where []string is expected"},
		{`{"cniVersion":"1.0.0","buses":[7]}`, "plugin config: buses: number where string is expected"},
		{`{"name":"x"}`, "plugin config: cniVersion is missing"},
		{`{"cniVersion":"1.0.0","type":"bridge"}`, `plugin config: type "bridge": this plugin is "kanto-can-cni"`},
		{`{"cniVersion":"1.0.0","buses":["can0,dir=up"]}`, `plugin config: buses[0]: bus "can0,dir=up": `},
		{`{"cniVersion":"1.0.0","buses":["can0","can0"]}`, "plugin config: buses: "},
		{`{"cniVersion":"1.0.0","policy":"etc/p.json"}`, `plugin config: policy "etc/p.json": an absolute path is needed`},
		{`{"cniVersion":"1.0.0","records":"run"}`, `plugin config: records "run": an absolute path is needed`},
		{`{"cniVersion":"1.0.0","args":{"cni":{"buses":["can0,rx=G"]}}}`, `plugin config: args.cni.buses[0]: bus "can0,rx=G"`},
		{`{"cniVersion":"1.0.0","prevResult":{"interfaces":"x"}}`, "plugin config: prevResult: "},
		{`{"cniVersion":"1.0.0","name":"can","type":"kanto-can-cni","bus":["can0"]}`, `plugin config: unknown key "bus" (kanto-can-cni's keys: buses, policy, records`},
		{`{"cniVersion":"1.0.0","Buses":["can0"]}`, `plugin config: unknown key "Buses"`},
		{`{"cniVersion":"1.0.0","zeta":1,"alpha":2}`, `plugin config: unknown key "alpha"`},
	} {
		_, err := Load([]byte(c.conf))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s...", c.conf, err, c.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs("K8S_POD_NAME=app;K8S_POD_NAMESPACE=fleet;K8S_POD_UID=u;K8S_POD_INFRA_CONTAINER_ID=x;IgnoreUnknown=1;KANTO_CAN=can0,rx=7E8;KANTO_CAN=can1:vcan0,dir=rx")
	if err != nil {
		t.Fatal(err)
	}
	if a.PodName != "app" || a.PodNamespace != "fleet" || len(a.Buses) != 2 || a.Buses[1] != "can1:vcan0,dir=rx" {
		t.Fatalf("%+v", a)
	}
	if a, err := ParseArgs(""); err != nil || a.PodName != "" {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := ParseArgs("K8S_POD_NAME=app;garbage"); err == nil || err.Error() != `CNI_ARGS: pair 2 ("garbage") is not KEY=VALUE` {
		t.Fatalf("got %v", err)
	}
}

func TestPolicyNames(t *testing.T) {
	if n := PolicyNames(Args{PodName: "app", PodNamespace: "fleet"}); len(n) != 1 || n[0] != "fleet/app" {
		t.Fatal(n)
	}
	if n := PolicyNames(Args{PodName: "app"}); len(n) != 1 || n[0] != "app" {
		t.Fatal(n)
	}
	if n := PolicyNames(Args{}); n != nil {
		t.Fatal(n)
	}
	if l := Label(Args{PodName: "app", PodNamespace: "fleet"}, "abc"); l != "pod fleet/app" {
		t.Fatal(l)
	}
	if l := Label(Args{}, "abc"); l != "pod sandbox abc" {
		t.Fatal(l)
	}
	// The policy: "*" does not cross "/", a pattern for Kanto names never
	// matches a pod, "*/*" matches every pod.
	p, err := policy.Parse([]byte(`{"buses":{"can0":{},"can1":{}},"containers":[
		{"match":"*","buses":{"can1":{}}},
		{"match":"fleet/*","buses":{"can0":{"dir":"rx"}}},
		{"match":"*/*","buses":{"can0":{}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a    Args
		want string
	}{
		{Args{PodName: "app", PodNamespace: "fleet"}, `containers[1] ("fleet/*")`},
		{Args{PodName: "app", PodNamespace: "default"}, `containers[2] ("*/*")`},
		{Args{PodName: "app"}, `containers[0] ("*")`},
	} {
		if _, which := p.For(PolicyNames(c.a)...); which != c.want {
			t.Errorf("%+v: matched %s, want %s", c.a, which, c.want)
		}
	}
	// A sandbox id is no name: a Kanto entry "*" does not grant a pod.
	if _, which := p.For(PolicyNames(Args{})...); which != "" {
		t.Errorf("a pod without a name matched %s", which)
	}
}

func TestRequest(t *testing.T) {
	c, err := Load([]byte(`{"cniVersion":"1.0.0","buses":["can0"]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Request(Args{})
	if err != nil || len(got) != 1 || got[0].Host != "can0" {
		t.Fatalf("network's buses: %+v %v", got, err)
	}
	got, err = c.Request(Args{Buses: []string{"can1:vcan0,dir=rx"}})
	if err != nil || len(got) != 1 || got[0].Host != "can1" || got[0].Inside != "vcan0" {
		t.Fatalf("the pod's own request replaces the network's: %+v %v", got, err)
	}
	if _, err := c.Request(Args{Buses: []string{"can1,fd=maybe"}}); err == nil || !strings.HasPrefix(err.Error(), "CNI_ARGS KANTO_CAN (1): ") {
		t.Fatalf("got %v", err)
	}
	m, err := Load([]byte(`{"cniVersion":"1.0.0","buses":["can0"],"args":{"cni":{"buses":["can1"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err = m.Request(Args{Buses: []string{"can2"}})
	if err != nil || len(got) != 2 || got[0].Host != "can1" || got[1].Host != "can2" {
		t.Fatalf("args.cni and CNI_ARGS: %+v %v", got, err)
	}
	if _, err := m.Request(Args{Buses: []string{"can1"}}); err == nil || !strings.Contains(err.Error(), "the pod's request") {
		t.Fatalf("a bus twice: got %v", err)
	}
	a, err := Load([]byte(`{"cniVersion":"1.0.0","buses":["can0"],"capabilities":{"io.kubernetes.cri.pod-annotations":true},` +
		`"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"kanto-can/buses":"can0,dir=rx,rx=7E8; can1","other":"x"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err = a.Request(Args{})
	if err != nil || len(got) != 2 || got[0].Host != "can0" || got[0].Dir != request.RxOnly || got[1].Host != "can1" {
		t.Fatalf("the pod annotation replaces the network's: %+v %v", got, err)
	}
	for ann, want := range map[string]string{
		"can0,dir=up": `pod annotation kanto-can/buses: bus 1: `,
		" ; ":         `pod annotation kanto-can/buses: no bus in " ; "`,
		"can0;can0":   `pod annotation kanto-can/buses: `,
	} {
		b, err := Load([]byte(`{"cniVersion":"1.0.0","runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"kanto-can/buses":` + strconv.Quote(ann) + `}}}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Request(Args{}); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("annotation %q: got %v, want %q...", ann, err, want)
		}
	}
	if got, err := m.Request(Args{}); err != nil || len(got) != 1 || got[0].Host != "can1" {
		t.Fatalf("no annotations passed: %+v %v", got, err)
	}
	e, _ := Load([]byte(`{"cniVersion":"1.0.0"}`))
	if got, err := e.Request(Args{}); err != nil || len(got) != 0 {
		t.Fatalf("nothing asked: %+v %v", got, err)
	}
}

// TestResultPassThrough: chained, ADD's result is the previous plugin's,
// unchanged (converted to the config's version only).
func TestResultPassThrough(t *testing.T) {
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:ff"},{"name":"eth0","mac":"11:22:33:44:55:66","sandbox":"/var/run/netns/cni-1"}],` +
		`"ips":[{"interface":1,"address":"192.0.2.5/24","gateway":"192.0.2.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["192.0.2.53"]}}`
	c, err := Load([]byte(`{"cniVersion":"1.0.0","name":"pods","type":"kanto-can-cni","prevResult":` + prev + `}`))
	if err != nil {
		t.Fatal(err)
	}
	p := &Plugin{}
	r := p.result(&prepared{conf: c}, "/var/run/netns/cni-1")
	out, err := r.GetAsVersion("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(out)
	var a, b any
	json.Unmarshal(got, &a)
	json.Unmarshal([]byte(prev), &b)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("prevResult changed:\n got %s\nwant %s", ja, jb)
	}

	// Alone: the CAN interfaces, in the pod, without addresses.
	s, err := Load([]byte(`{"cniVersion":"1.0.0","name":"can","buses":["can0","can1:vcan1"]}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := types100.NewResultFromResult(p.result(&prepared{conf: s, buses: s.buses}, "/ns"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 2 || res.Interfaces[1].Name != "vcan1" || res.Interfaces[1].Sandbox != "/ns" || len(res.IPs) != 0 {
		t.Fatalf("%s", res)
	}
}

func TestAsError(t *testing.T) {
	if e := AsError(types.NewError(ErrPolicy, "no", "")); e.Code != ErrPolicy {
		t.Fatal(e)
	}
	if e := AsError(errString("x")); e.Code != types.ErrInternal || e.Msg != "x" {
		t.Fatal(e)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestRecordsOf(t *testing.T) {
	if r := recordsOf([]byte(`{"records":"/run/x","buses":"broken"}`)); r != "/run/x" {
		t.Fatal(r)
	}
	if r := recordsOf([]byte(`{not json`)); r != record.DefaultDir {
		t.Fatal(r)
	}
}
