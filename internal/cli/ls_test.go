package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/attach"
)

// fields splits a table into rows of whitespace-separated fields,
// keyed by their first field.
func fields(out string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue // a blank line between tables
		}
		rows[f[0]] = f
	}
	return rows
}

func TestLsTableShowsTheBus(t *testing.T) {
	list := []attach.Attachment{
		{Label: "hw", HostBus: "can0", HostBusIndex: 3, HostBusState: "error-active", HostBusBitrate: 500000, Inside: "can0", HostEnd: "kcan1",
			Rules: []attach.RuleState{{Direction: "rx", Filter: "all"}}},
		{Label: "fd", HostBus: "can1", HostBusIndex: 4, HostBusState: "bus-off", HostBusBitrate: 1000000, HostBusDataBitrate: 8000000, HostBusFD: true, Inside: "can0", HostEnd: "kcan2"},
		{Label: "virt", HostBus: "vcan0", HostBusIndex: 5, HostBusFD: true, Inside: "can0", HostEnd: "kcan3",
			Rules: []attach.RuleState{{Direction: "tx", Filter: "all"}}},
		{Label: "gone", HostBus: "can9", Inside: "can0", HostEnd: "kcan4"},
		// A Kanto container shows by its name, whatever its label.
		{Label: "container 3f2a", Container: "3f2a", Name: "named", HostBus: "can0", HostBusIndex: 3, Inside: "can0", HostEnd: "kcan5"},
	}
	var b bytes.Buffer
	printTable(&b, list)
	rows := fields(b.String())
	if got := rows["TARGET"][:5]; strings.Join(got, " ") != "TARGET BUS STATE BITRATE BUS" {
		t.Fatalf("header %v", rows["TARGET"])
	}
	for label, want := range map[string]string{
		"hw":        "hw can0 error-active 500000 no can0 kcan1",
		"fd":        "fd can1 bus-off 1000000/8000000 yes can0 kcan2",
		"virt":      "virt vcan0 - - yes can0 kcan3",
		"gone":      "gone can9 (missing) - - - can0 kcan4",
		"container": "container named can0",
	} {
		if got := strings.Join(rows[label], " "); !strings.HasPrefix(got, want+" ") {
			t.Errorf("row %s: %q, want it to start with %q", label, got, want)
		}
	}
}

func TestStatusTable(t *testing.T) {
	buses := []attach.HostBusStatus{
		{Name: "can0", Index: 3, Kind: "can", Up: true, State: "error-passive", Bitrate: 250000, MTU: 16, Attachments: 3,
			Who: []string{"container app", "container db", "pid 42"}},
		{Name: "vcan0", Index: 5, Kind: "vcan", Up: true, FD: true, MTU: 72, Attachments: 1, Who: []string{"container app"}},
		{Name: "can9", Attachments: 2, Who: []string{"container a", "container b"}},
	}
	var b bytes.Buffer
	printStatus(&b, statusView{Policy: policyStatus{Summary: "none (no /etc/kanto-can/config.json): any container may use any bus"}, Buses: buses})
	rows := fields(b.String())
	for bus, want := range map[string]string{
		"policy:": "policy: none (no /etc/kanto-can/config.json): any container may use any bus",
		"BUS":     "BUS INDEX KIND UP STATE BITRATE FD ATTACHMENTS CONTAINERS",
		"can0":    "can0 3 can yes error-passive 250000 no 3 container app, container db, pid 42",
		"vcan0":   "vcan0 5 vcan yes - - yes 1 container app",
		"can9":    "can9 (missing) - - - - - - 2 container a, container b",
	} {
		if got := strings.Join(rows[bus], " "); got != want {
			t.Errorf("row %s: %q, want %q", bus, got, want)
		}
	}
}

// The JSON names of the bus fields, and who and dir as the table shows them.
func TestLsJSONNames(t *testing.T) {
	b, err := json.Marshal(attach.Attachment{Label: "pid 7", HostBus: "can0", HostBusIndex: 3, HostBusState: "error-active", HostBusBitrate: 500000, HostBusDataBitrate: 2000000, HostBusFD: true})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"bus": "can0", "bus_index": 3.0, "bus_state": "error-active", "bus_bitrate": 500000.0,
		"bus_data_bitrate": 2000000.0, "bus_fd": true, "target": "", "inside": "", "host_end": "", "fd": false,
		"who": "pid 7", "dir": "none"} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v (all: %s)", k, m[k], want, b)
		}
	}
	// No rules (a bus that came back, not yet routed): [], not null.
	if rules, ok := m["rules"].([]any); !ok || len(rules) != 0 {
		t.Errorf("rules = %#v, want []", m["rules"])
	}
	// Virtual buses: no state, no bitrate.
	b, _ = json.Marshal(attach.Attachment{HostBus: "vcan0", HostBusIndex: 5, HostBusFD: true})
	for _, k := range []string{`"bus_state"`, `"bus_bitrate"`, `"bus_data_bitrate"`} {
		if strings.Contains(string(b), k) {
			t.Errorf("virtual bus: %s in %s", k, b)
		}
	}
}
