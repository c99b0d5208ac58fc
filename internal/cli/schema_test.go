package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/sample"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

// fixture is one host as ls, status and top would read it twice, a second
// apart: a named container with a rate limit on a CAN FD controller, a
// pid on a vcan receiving only, and a bus that is gone.
func fixture() (prev, cur sample.Sample) {
	tx, rx := uint16(97), uint16(0)
	buses := func(rxFrames uint64) []attach.HostBusStatus {
		return []attach.HostBusStatus{
			{Name: "can0", Index: 3, Kind: "can", Up: true, State: "error-warning", Bitrate: 500000, DataBitrate: 2000000, FD: true, MTU: 72,
				Attachments: 2, Bridged: 1, Who: []string{"container 77ab", "container databroker"},
				Counters: &attach.BusCounters{RxFrames: rxFrames, TxFrames: 40, RxBytes: 8 * rxFrames, TxBytes: 320},
				Errors:   &attach.BusErrors{TxErrorCounter: &tx, RxErrorCounter: &rx, ErrorWarning: 1}},
			{Name: "can9", Attachments: 1, Who: []string{"netns /run/netns/old"}},
			{Name: "vcan0", Index: 5, Kind: "vcan", Up: true, FD: true, MTU: 72, Attachments: 1, Who: []string{"pid 4242"},
				Counters: &attach.BusCounters{RxFrames: rxFrames}},
		}
	}
	attachments := func(handled, dropped uint32) []attach.Attachment {
		return []attach.Attachment{
			{Target: "netns:4026532701", Label: "container 3f1c", Container: "3f1c", Name: "databroker",
				HostBus: "can0", HostBusIndex: 3, HostBusState: "error-warning", HostBusBitrate: 500000, HostBusDataBitrate: 2000000, HostBusFD: true,
				Inside: "can0", HostEnd: "kcan3f1c", HostEndIndex: 11, FD: true, Mode: attach.ModeGateway,
				Rules: []attach.RuleState{
					{Direction: "rx", Filter: "7E8", Handled: handled},
					{Direction: "rx", FD: true, Filter: "7E8"},
					{Direction: "tx", Filter: "7DF", Handled: handled / 2, Dropped: dropped},
					{Direction: "tx", FD: true, Filter: "7DF"},
				},
				TxRate: &attach.RateState{FramesPerSecond: 100, Burst: 10, Passed: uint64(handled / 2), Dropped: uint64(dropped)}},
			{Target: "netns:4026532702", Label: "pid 4242", HostBus: "vcan0", HostBusIndex: 5, HostBusFD: true,
				Inside: "vcan0", HostEnd: "kcan4242", HostEndIndex: 12, FD: true, Mode: attach.ModeGateway,
				Rules: []attach.RuleState{{Direction: "rx", Filter: "all", Handled: handled}, {Direction: "rx", FD: true, Filter: "all"}}},
			// Its bus is gone: no rules until it comes back.
			{Target: "netns:4026532703", Label: "netns /run/netns/old", HostBus: "can9", Inside: "can0", HostEnd: "kcanold", HostEndIndex: 13, Mode: attach.ModeGateway},
			// Bridged by the daemon: no host end, no rules.
			{Target: "netns:4026532704", Label: "container 77ab", Container: "77ab", Inside: "can0", FD: true,
				HostBus: "can0", HostBusIndex: 3, HostBusState: "error-warning", HostBusBitrate: 500000, HostBusDataBitrate: 2000000, HostBusFD: true,
				HostEnd: attach.ModeBridge, Mode: attach.ModeBridge, Bridge: &attach.BridgeGrant{Dir: "both", RX: []string{"7E8"}, TX: []string{"all"}}, Rules: []attach.RuleState{}},
		}
	}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	return sample.Sample{Time: t0, Buses: buses(100), Attachments: attachments(100, 0)},
		sample.Sample{Time: t0.Add(time.Second), Buses: buses(300), Attachments: attachments(300, 7)}
}

// asJSON is what -o json prints for v.
func asJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := outputFlag("json").write(&b, v, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// outputs renders the fixture as ls, status and top print it.
func outputs(t *testing.T, pol policyStatus) (ls, status, top []byte) {
	prev, cur := fixture()
	v := sample.Between(prev, cur)
	sample.Sort(v.Attachments, sample.ByRate)
	return asJSON(t, cur.Attachments), asJSON(t, statusView{Policy: pol, Buses: cur.Buses}), asJSON(t, v)
}

// The outputs hold to their documented schemas, with a policy or none,
// and with an empty host.
func TestOutputsHoldToTheirSchemas(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	if err := os.WriteFile(file, []byte(`{"buses":{"can0":{}},"containers":[{"match":"databroker","buses":{"can0":{"tx_rate":{"frames_per_second":100}}}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, pol := range map[string]policyStatus{
		"none":    policyInForce(filepath.Join(dir, "absent.json"), false),
		"file":    policyInForce(file, true),
		"missing": policyInForce(filepath.Join(dir, "absent.json"), true),
	} {
		ls, status, top := outputs(t, pol)
		schematest.Validate(t, "docs/cli/ls.schema.json", ls)
		schematest.Validate(t, "docs/cli/status.schema.json", status)
		schematest.Validate(t, "docs/cli/top.schema.json", top)
		if t.Failed() {
			t.Fatalf("policy %s", name)
		}
	}
	schematest.Validate(t, "docs/cli/ls.schema.json", asJSON(t, []attach.Attachment{}))
	schematest.Validate(t, "docs/cli/status.schema.json", asJSON(t, statusView{Policy: policyInForce(filepath.Join(dir, "absent.json"), false), Buses: []attach.HostBusStatus{}}))
	schematest.Validate(t, "docs/cli/top.schema.json", asJSON(t, sample.Between(sample.Sample{}, sample.Sample{Time: time.Now()})))
}

// The schemas hold: the names the outputs had before, and values out of
// their range, are refused.
func TestCLISchemasRefuse(t *testing.T) {
	ls, status, top := outputs(t, policyInForce(filepath.Join(t.TempDir(), "absent.json"), false))
	for _, tc := range []struct {
		schema, path string
		out          []byte
		set          func(m map[string]any)
	}{
		{"ls", "[0]", ls, func(m map[string]any) { m["direction"] = "both" }},
		{"ls", "[0]", ls, func(m map[string]any) { delete(m, "who") }},
		{"ls", "[0]", ls, func(m map[string]any) { m["dir"] = "sideways" }},
		{"ls", "[0].tx_rate", ls, func(m map[string]any) { m["frames_per_second"] = 0 }},
		{"status", "", status, func(m map[string]any) { delete(m, "policy") }},
		{"status", ".policy", status, func(m map[string]any) { m["sha256"] = "abc" }},
		{"status", ".buses[0]", status, func(m map[string]any) { m["index"] = 3 }},
		{"status", ".buses[0]", status, func(m map[string]any) { m["containers"] = []string{} }},
		{"top", ".attachments[0]", top, func(m map[string]any) { m["tx_limit"] = 100 }},
		{"top", ".attachments[0]", top, func(m map[string]any) { m["drops"] = 0 }},
		{"top", ".attachments[0]", top, func(m map[string]any) { m["rate_limit_drops"] = 0 }},
		{"top", ".buses[0]", top, func(m map[string]any) { delete(m, "bus_index") }},
	} {
		var v any
		if err := json.Unmarshal(tc.out, &v); err != nil {
			t.Fatal(err)
		}
		tc.set(at(t, v, tc.path))
		bad, _ := json.Marshal(v)
		if schematest.Check(t, "docs/cli/"+tc.schema+".schema.json", bad) == nil {
			t.Errorf("%s accepts %s changed at %q: %s", tc.schema, tc.path, tc.path, bad)
		}
	}
}

// at is the object at a path of [i] and .key steps.
func at(t *testing.T, v any, path string) map[string]any {
	t.Helper()
	for path != "" {
		switch path[0] {
		case '[':
			v, path = v.([]any)[int(path[1]-'0')], path[3:]
		case '.':
			end := 1
			for end < len(path) && path[end] != '.' && path[end] != '[' {
				end++
			}
			v, path = v.(map[string]any)[path[1:end]], path[end:]
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%q is not an object", path)
	}
	return m
}

// One name per thing: what ls and top both say of an attachment, and
// what status and top both say of a bus, has the same name and value.
func TestOneVocabulary(t *testing.T) {
	lsOut, statusOut, topOut := outputs(t, policyInForce(filepath.Join(t.TempDir(), "absent.json"), false))
	var ls []map[string]any
	var status struct{ Buses []map[string]any }
	var top struct{ Buses, Attachments []map[string]any }
	for _, x := range []struct {
		out []byte
		v   any
	}{{lsOut, &ls}, {statusOut, &status}, {topOut, &top}} {
		if err := json.Unmarshal(x.out, x.v); err != nil {
			t.Fatal(err)
		}
	}
	byKey := func(list []map[string]any, key string) map[any]map[string]any {
		out := map[any]map[string]any{}
		for _, m := range list {
			out[m[key]] = m
		}
		return out
	}
	topAtt := byKey(top.Attachments, "host_end")
	for _, a := range ls {
		ta := topAtt[a["host_end"]]
		for _, k := range []string{"who", "target", "label", "container", "name", "bus", "inside", "host_end", "host_end_index", "dir"} {
			if !reflect.DeepEqual(a[k], ta[k]) {
				t.Errorf("%s: ls says %s %v, top %v", a["host_end"], k, a[k], ta[k])
			}
		}
		if lr, tr := a["tx_rate"], ta["tx_rate"]; (lr == nil) != (tr == nil) {
			t.Errorf("%s: ls tx_rate %v, top %v", a["host_end"], lr, tr)
		} else if lr != nil {
			for k, v := range lr.(map[string]any) {
				if tv := tr.(map[string]any)[k]; tv != v {
					t.Errorf("%s: tx_rate.%s: ls %v, top %v", a["host_end"], k, v, tv)
				}
			}
		}
		// top's totals are ls's rules' counters summed.
		var dropped float64
		for _, r := range a["rules"].([]any) {
			dropped += r.(map[string]any)["dropped"].(float64)
		}
		if ta["dropped"] != dropped {
			t.Errorf("%s: ls rules dropped %v in all, top dropped %v", a["host_end"], dropped, ta["dropped"])
		}
	}
	topBus := byKey(top.Buses, "bus")
	for _, b := range status.Buses {
		for k, v := range b {
			if !reflect.DeepEqual(topBus[b["bus"]][k], v) {
				t.Errorf("bus %s: status says %s %v, top %v", b["bus"], k, v, topBus[b["bus"]][k])
			}
		}
	}
	// ls names its bus's fields as status does, prefixed bus_.
	statusBus := byKey(status.Buses, "bus")
	for _, a := range ls {
		b := statusBus[a["bus"]]
		for _, k := range []string{"bus_index", "state", "bitrate", "data_bitrate", "fd"} {
			lk := k
			if k != "bus_index" {
				lk = "bus_" + k
			}
			if !reflect.DeepEqual(a[lk], b[k]) {
				t.Errorf("%s: ls %s %v, status %s %v", a["host_end"], lk, a[lk], k, b[k])
			}
		}
	}
}
