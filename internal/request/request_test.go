package request

import (
	"strings"
	"testing"
)

func TestParseBus(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"can0", "can0,dir=both,fd=auto"},
		{"can0:vcan9", "can0:vcan9,dir=both,fd=auto"},
		{"can0,dir=rx-only", "can0,dir=rx,fd=auto"},
		{"can0,dir=tx,fd=off", "can0,dir=tx,fd=off"},
		{"can0,rx=7DF,7E8,tx=7E0", "can0,dir=both,fd=auto,rx=7DF,7E8,tx=7E0"},
		{"can0,tx=100-10F,18DAF110,fd=on", "can0,dir=both,fd=on,tx=100-10F,18DAF110"},
		{"can0,rx=700/7F0", "can0,dir=both,fd=auto,rx=700-70F"},
		{"can9,optional", "can9,dir=both,fd=auto,optional"},
		{"can9,rx=7DF,optional,tx=7E0", "can9,dir=both,fd=auto,rx=7DF,tx=7E0,optional"},
		{"can9,required", "can9,dir=both,fd=auto"},
	} {
		b, err := ParseBus(tc.in)
		if err != nil {
			t.Errorf("ParseBus(%q): %v", tc.in, err)
			continue
		}
		if b.String() != tc.want {
			t.Errorf("ParseBus(%q) = %s, want %s", tc.in, b, tc.want)
		}
	}
}

func TestParseBusErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "host bus is empty",
		"can0:averyveryverylongname": "at most 15",
		"can0:":                      "inside name is empty",
		"can0,dir=sideways":          `dir="sideways"`,
		"can0,fd=maybe":              `fd="maybe"`,
		"can0,speed=1":               `unknown key "speed"`,
		"can0,7DF":                   "not key=value",
		"can0,rx=800":                "11-bit",
		"can0,rx=7DF,dir=rx,rx=7E8":  "rx given twice",
		"can0,dir=tx,rx=7DF":         "receives nothing",
		"can0,dir=rx,tx=7DF":         "transmits nothing",
		"can0,rx=100/701,100-1FF":    "overlaps",
		"can0,tx=12345":              "5 hex digits",
		"can 0":                      "not allowed",
	} {
		_, err := ParseBus(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBus(%q) error = %v, want it to contain %q", in, err, want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseBus(%q) error spans lines: %q", in, err)
		}
	}
}

func TestCheckSet(t *testing.T) {
	a, _ := ParseBus("can0")
	b, _ := ParseBus("can1:can0")
	c, _ := ParseBus("can0:x")
	if err := CheckSet([]Bus{a, b}); err == nil || !strings.Contains(err.Error(), "inside name can0") {
		t.Errorf("CheckSet same inside = %v", err)
	}
	if err := CheckSet([]Bus{a, c}); err == nil || !strings.Contains(err.Error(), "bus can0 requested twice") {
		t.Errorf("CheckSet same host = %v", err)
	}
}

func FuzzParseBus(f *testing.F) {
	for _, s := range []string{"can0", "can0:can1,dir=rx,rx=7DF,7E8", "vcan0,tx=100-10F,fd=on", "can0,dir=tx-only,tx=18DAF110,700/7F0", "a:b,fd=off"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBus(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error for %q", s)
			}
			return
		}
		// A parsed bus prints as a spec that parses to the same bus.
		again, err := ParseBus(b.String())
		if err != nil {
			t.Fatalf("ParseBus(%q) ok, but its String %q fails: %v", s, b.String(), err)
		}
		if again.String() != b.String() {
			t.Fatalf("round trip %q -> %q -> %q", s, b, again)
		}
		if len(b.Host) > MaxIfNameLen || len(b.Inside) > MaxIfNameLen {
			t.Fatalf("accepted a name longer than %d bytes: %q", MaxIfNameLen, s)
		}
	})
}

func TestParseList(t *testing.T) {
	buses, err := ParseList(" can0 ; can1:vcan0,dir=rx,optional;")
	if err != nil || len(buses) != 2 || buses[1].Inside != "vcan0" || !buses[1].Optional || buses[0].Optional {
		t.Fatalf("ParseList = %+v, %v", buses, err)
	}
	for in, want := range map[string]string{
		"":                 "no bus",
		" ; ":              "no bus",
		"can0;can0:x":      "bus can0 requested twice",
		"can0;can1,rx=800": `bus 2: bus "can1,rx=800": rx:`,
	} {
		if _, err := ParseList(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseList(%q) error = %v, want %q", in, err, want)
		}
	}
}
