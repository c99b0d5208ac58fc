package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/request"
)

const sample = `{
  "buses": {"can0": {"fd": "auto"}, "can1": {"fd": "off"}, "vcan0": {}},
  "containers": [
    {"match": ["databroker", "db-*"], "buses": {
      "can0": {"dir": "both", "rx": ["7DF", "7E8"], "tx": ["100-10F"], "tx_rate": {"frames_per_second": 100, "burst": 10}},
      "can1": {"dir": "rx"}
    }},
    {"match": "logger", "buses": {"can0": {"dir": "rx"}}}
  ],
  "default": {"buses": {"vcan0": {}}}
}`

func mustParse(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func buses(t *testing.T, spec string) []request.Bus {
	t.Helper()
	b, err := request.ParseList(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Table: policy x request -> grants or error.
func TestResolve(t *testing.T) {
	p := mustParse(t, sample)
	for _, tc := range []struct {
		names []string
		req   string
		want  string // resolved buses, or the error's text
	}{
		{[]string{"databroker"}, "can0", "can0,dir=both,fd=auto,rx=7DF,7E8,tx=100-10F rate=100/s burst 10"},
		{[]string{"uuid-1", "db-main"}, "can0,rx=7E8", "can0,dir=both,fd=auto,rx=7E8,tx=100-10F rate=100/s burst 10"},
		{[]string{"databroker"}, "can0,tx=100-103", "can0,dir=both,fd=auto,rx=7DF,7E8,tx=100-103 rate=100/s burst 10"},
		{[]string{"databroker"}, "can0,dir=rx", "can0,dir=rx,fd=auto,rx=7DF,7E8"},
		{[]string{"databroker"}, "can1", "can1,dir=rx,fd=off"},
		{[]string{"logger"}, "can0", "can0,dir=rx,fd=auto"},
		{[]string{"someone"}, "vcan0", "vcan0,dir=both,fd=auto"},
		{nil, "vcan0", "vcan0,dir=both,fd=auto"},
		// Asking for more than granted.
		{[]string{"databroker"}, "can0,tx=100-1FF", "bus can0: tx ids 110-1FF not granted (granted: 100-10F)"},
		{[]string{"databroker"}, "can0,rx=7DF,7E0", "bus can0: rx ids 7E0 not granted"},
		{[]string{"databroker"}, "can1,dir=both", "bus can1: dir=both asked, only dir=rx granted"},
		{[]string{"databroker"}, "can1,dir=rx,fd=on", "fd=on asked, the bus is configured fd=off"},
		{[]string{"logger"}, "can0,dir=tx", "dir=tx asked, only dir=rx granted"},
		{[]string{"someone"}, "can0", "container someone may not use bus can0"},
		{nil, "can0", "this container may not use bus can0"},
		{[]string{"databroker"}, "can9", "bus can9 is not one of the buses for containers (can0, can1, vcan0)"},
	} {
		granted, err := p.Resolve(tc.names, buses(t, tc.req))
		got := granted.Buses()
		var s string
		if err != nil {
			s = err.Error()
		} else {
			var parts []string
			for _, b := range got {
				x := b.String()
				if b.TxRate != nil {
					x += " rate=" + b.TxRate.String()
				}
				parts = append(parts, x)
			}
			s = strings.Join(parts, "; ")
		}
		if !strings.Contains(s, tc.want) {
			t.Errorf("%v asks %q: got %q, want %q", tc.names, tc.req, s, tc.want)
		}
	}
}

func TestVirtualBus(t *testing.T) {
	p := mustParse(t, `{"buses": {"sim0": {"virtual": true}}, "default": {"buses": {"sim0": {}}}}`)
	granted, err := p.Resolve(nil, buses(t, "sim0"))
	got := granted.Buses()
	if err != nil || !got[0].Virtual {
		t.Fatalf("Resolve = %+v, %v", got, err)
	}
}

// A bus's bridge mode reaches every request for it; auto by default.
func TestBridgeMode(t *testing.T) {
	p := mustParse(t, `{"buses": {"can0": {"bridge": "always"}, "can1": {"bridge": "never"}, "can2": {}}, "default": {"buses": {"can0": {}, "can1": {}, "can2": {}}}}`)
	granted, err := p.Resolve(nil, buses(t, "can0;can1;can2"))
	got := granted.Buses()
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Bridge != request.BridgeAlways || got[1].Bridge != request.BridgeNever || got[2].Bridge != request.BridgeAuto {
		t.Errorf("bridge modes %v %v %v, want always never auto", got[0].Bridge, got[1].Bridge, got[2].Bridge)
	}
}

func TestNoPolicyAllowsAll(t *testing.T) {
	var p *Policy
	req := buses(t, "can0;can1,dir=rx")
	granted, err := p.Resolve([]string{"x"}, req)
	got := granted.Buses()
	if err != nil || len(got) != 2 || got[1].Dir != request.RxOnly {
		t.Fatalf("nil policy: %+v, %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{`{"buses": {"can0": {}},}`, "line 1, column 24: invalid character '}'"},
		// The column of the bad byte, 1-based, as the CNI plugin's: x is
		// the 12th character of its line (this said 13).
		{"{\n  \"buses\": x\n}", "line 2, column 12: invalid character 'x'"},
		{`[]`, "the file: want an object"},
		{`{"busses": {}}`, "busses: unknown field"},
		{`{"buses": {"can0": {"fd": "maybe"}}}`, "buses.can0.fd: maybe"},
		{`{"buses": {"can0": {"speed": 1}}}`, "buses.can0.speed: unknown field"},
		{`{"buses": {"can0": {}}, "containers": [{"buses": {}}]}`, "containers[0].match: missing"},
		{`{"buses": {"can0": {}}, "containers": [{"match": "a", "buses": {"can9": {}}}]}`, `containers[0].buses.can9: bus can9 is not in "buses"`},
		{`{"buses": {"can0": {}}, "containers": [{"match": "a", "buses": {"can0": {"rx": ["100-10F", "105"]}}}]}`, "containers[0].buses.can0.rx[1]: 105 overlaps containers[0].buses.can0.rx[0] (100-10F)"},
		{`{"buses": {"can0": {}}, "default": {"buses": {"can0": {"tx": ["800"]}}}}`, "default.buses.can0.tx[0]: 800 is beyond the 11-bit range"},
		{`{"buses": {"can0": {}}, "default": {"buses": {"can0": {"tx": ["12345"]}}}}`, "default.buses.can0.tx[0]: \"12345\" has 5 hex digits"},
		{`{"buses": {"can0": {}}, "default": {"buses": {"can0": {"tx_rate": {"frames_per_second": -5}}}}}`, "default.buses.can0.tx_rate.frames_per_second: -5: want a whole number"},
		{`{"buses": {"can0": {}}, "default": {"buses": {"can0": {"dir": "rx", "tx_rate": {"frames_per_second": 5}}}}}`, "tx_rate: dir=rx transmits nothing"},
		{`{"buses": {"can0": {}}, "default": {"buses": {"can0": {"dir": "tx", "rx": ["7DF"]}}}}`, "default.buses.can0.rx: dir=tx receives nothing"},
		{`{"buses": {"can0": {}}, "default": {"buses": {"can0": {"rx": "7DF"}}}}`, "default.buses.can0.rx: want an array"},
		{`{"buses": {"averyveryverylongname": {}}}`, "buses.averyveryverylongname: bus name"},
		{`{"buses": {"sim0": {"virtual": "yes"}}}`, "buses.sim0.virtual: want true or false"},
		{`{"buses": {"can0": {"bridge": "sometimes"}}}`, `buses.can0.bridge: sometimes: want "auto", "never" or "always"`},
		{`{"buses": {"can0": {"bridge": true}}}`, `buses.can0.bridge: true: want "auto", "never" or "always"`},
	} {
		_, err := Parse([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): error %v, want %q", tc.file, err, tc.want)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%s): multi-line error", tc.file)
		}
	}
}

func TestManyRulesWarning(t *testing.T) {
	var ids []string
	for i := 0; i < 70; i++ {
		ids = append(ids, fmt.Sprintf(`"%03X"`, 0x100+2*i))
	}
	p := mustParse(t, `{"buses": {"can0": {}}, "default": {"buses": {"can0": {"rx": [`+strings.Join(ids, ",")+`]}}}}`)
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "default.buses.can0.rx compiles to 70 can-gw rules") {
		t.Fatalf("warnings %v", p.Warnings)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"buses": {"can0": {}}, "default": {"buses": {"can0": {}}}}`))
	f.Add([]byte(`{"buses": {"can0": {"fd": "on"}}, "containers": [{"match": ["a*"], "buses": {"can0": {"dir": "tx", "tx": ["18DA0000-18DAFFFF", "700/701"], "tx_rate": {"frames_per_second": 5}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		// Whatever parses resolves without panicking.
		p.Resolve([]string{"a"}, []request.Bus{{Host: "can0", Inside: "can0"}})
	})
}

// Open applies the one rule of every front end: no file at the default
// path is no policy (said in a note), a named file must exist, a malformed
// one is an error naming it.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "config.json")
	p, notes, err := Open(missing, false)
	if p != nil || err != nil || len(notes) != 1 || !strings.Contains(notes[0], "no policy file "+missing+": any container may use any bus") {
		t.Errorf("no file at the default path: %v, %q, %v", p, notes, err)
	}
	if _, _, err := Open(missing, true); err == nil || !strings.HasPrefix(err.Error(), "policy: open "+missing) {
		t.Errorf("a named file that is missing: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"buses": 1}`), 0o644)
	if _, _, err := Open(bad, false); err == nil || !strings.HasPrefix(err.Error(), "policy: "+bad+": ") {
		t.Errorf("a malformed file: %v", err)
	}
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"buses": {"can0": {}}, "default": {"buses": {"can0": {}}}}`), 0o644)
	if p, _, err := Open(good, false); p == nil || err != nil {
		t.Errorf("a valid file: %v, %v", p, err)
	}
}
