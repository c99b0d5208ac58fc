package attach

import (
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/request"
)

var (
	classicBus = canlink.Link{Index: 7, Name: "can0", Kind: "can", Type: 280, MTU: 16}
	fdBus      = canlink.Link{Index: 9, Name: "vcan0", Kind: "vcan", Type: 280, MTU: 72}
)

func mustBus(t *testing.T, spec string) request.Bus {
	t.Helper()
	b, err := request.ParseBus(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rules renders a plan's rules compactly: src>dst flags filter.
func rules(p Plan) string {
	var s []string
	for _, r := range p.Rules {
		f := "all"
		if r.Filter != nil {
			f = FilterString(r.Filter)
		}
		s = append(s, strings.Join([]string{itoa(r.Src) + ">" + itoa(r.Dst), r.Flags.String(), f}, " "))
	}
	return strings.Join(s, "; ")
}

func itoa(i int) string {
	if i == HostEndIndex {
		return "H"
	}
	return string(rune('0' + i))
}

func TestMakePlan(t *testing.T) {
	for _, tc := range []struct {
		spec string
		bus  canlink.Link
		mtu  int
		want string
	}{
		{"can0", classicBus, 16, "7>H 0 all; H>7 ECHO|IIF_TX_OK all"},
		{"vcan0", fdBus, 72, "9>H 0 all; 9>H FD all; H>9 ECHO|IIF_TX_OK all; H>9 ECHO|IIF_TX_OK|FD all"},
		{"vcan0,fd=off", fdBus, 16, "9>H 0 all; H>9 ECHO|IIF_TX_OK all"},
		{"can0,dir=rx", classicBus, 16, "7>H 0 all"},
		{"can0,dir=tx", classicBus, 16, "H>7 ECHO|IIF_TX_OK all"},
		{"can0,rx=7DF,7E8,tx=100-10F", classicBus, 16, "7>H 0 7DF; 7>H 0 7E8; H>7 ECHO|IIF_TX_OK 100-10F"},
	} {
		p, err := MakePlan(mustBus(t, tc.spec), "netns:1", tc.bus)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if p.MTU != tc.mtu {
			t.Errorf("%s: MTU %d, want %d", tc.spec, p.MTU, tc.mtu)
		}
		if got := rules(p); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.spec, got, tc.want)
		}
	}
}

func TestMakePlanErrors(t *testing.T) {
	eth := canlink.Link{Index: 2, Name: "eth0", Kind: "veth", Type: 1, MTU: 1500}
	if _, err := MakePlan(mustBus(t, "eth0"), "x", eth); err == nil || !strings.Contains(err.Error(), "not a CAN interface") {
		t.Errorf("non-CAN bus: %v", err)
	}
	if _, err := MakePlan(mustBus(t, "can0,fd=on"), "x", classicBus); err == nil || !strings.Contains(err.Error(), "classic CAN only") {
		t.Errorf("fd=on on classic bus: %v", err)
	}
}

func TestResolve(t *testing.T) {
	p, _ := MakePlan(mustBus(t, "can0"), "x", classicBus)
	rs := p.Resolve(42)
	if rs[0].Dst != 42 || rs[1].Src != 42 || p.Rules[0].Dst != HostEndIndex {
		t.Fatalf("Resolve = %+v (plan %+v)", rs, p.Rules)
	}
	if rs[1].Flags&cangw.FlagIIFTXOK == 0 {
		t.Fatal("container -> bus rule lacks IIF_TX_OK: the ifindex-collision trap would drop its frames")
	}
}

func TestHostEndName(t *testing.T) {
	a := HostEndName("netns:4026532000", "can0")
	if len(a) != 15 || !strings.HasPrefix(a, HostEndPrefix) {
		t.Fatalf("HostEndName = %q", a)
	}
	if a != HostEndName("netns:4026532000", "can0") {
		t.Fatal("not stable")
	}
	if a == HostEndName("netns:4026532000", "can1") || a == HostEndName("netns:4026532001", "can0") {
		t.Fatal("not unique per (target, bus)")
	}
	// Neighbouring inputs give unrelated names, not names one digit apart.
	b := HostEndName("netns:4026532000", "can1")
	same := 0
	for i := len(HostEndPrefix); i < len(a); i++ {
		if a[i] == b[i] {
			same++
		}
	}
	if same > 5 {
		t.Fatalf("%s and %s share %d of 11 digits", a, b, same)
	}
}

func TestAliasRoundTrip(t *testing.T) {
	m := Meta{Target: "netns:4026532000", Label: "netns /run/netns/my app", HostBus: "can0", Inside: "vcan 1", Container: "app-1"}
	a, err := m.Alias()
	got, ok := ParseAlias(a)
	if err != nil || !ok || got != m {
		t.Fatalf("ParseAlias(%q) = %+v, %v (%v)", a, got, ok, err)
	}
	long := Meta{Target: "netns:1", Label: strings.Repeat("%x", 200), HostBus: "can0", Inside: "can0"}
	if a, err := long.Alias(); err != nil || len(a) > 255 {
		t.Fatalf("alias of %d bytes, %v", len(a), err)
	} else if _, ok := ParseAlias(a); !ok {
		t.Fatalf("cut alias does not parse: %q", a)
	}
	for _, foreign := range []string{"", "my link", "kanto-can v2 target=x bus=y in=z", "kanto-can v1 bus=can0"} {
		if _, ok := ParseAlias(foreign); ok {
			t.Errorf("ParseAlias(%q) took a foreign alias for ours", foreign)
		}
	}
}

// runc does not cap container ids: a 250-byte id (seen panicking the hook)
// must give an error naming the id's length, never a panic or an alias the
// kernel would refuse.
func TestAliasLongContainerID(t *testing.T) {
	m := Meta{Target: "netns:4026532000", Label: "container x", HostBus: "can0", Inside: "can0", Container: strings.Repeat("a", 250)}
	a, err := m.Alias()
	if err == nil || !strings.Contains(err.Error(), "container id of 250 bytes is too long") {
		t.Fatalf("Alias() = %q, %v; want an error about the id's length", a, err)
	}
	// The longest id that fits round-trips.
	for n := 250; n > 0; n-- {
		m.Container = strings.Repeat("a", n)
		if a, err = m.Alias(); err == nil {
			break
		}
	}
	if got, ok := ParseAlias(a); !ok || got.Container != m.Container || len(a) > maxAlias {
		t.Fatalf("longest id (%d bytes): alias %q (%d bytes) parses to %+v, %v", len(m.Container), a, len(a), got, ok)
	}
}

// Any meta gives an alias within the kernel's limit that parses back to
// the same fields (the label may be cut, never the others), or an error.
func FuzzAlias(f *testing.F) {
	f.Add("netns:4026532000", "container app", "can0", "can0", "3f2a-app")
	f.Add("netns:1", strings.Repeat("%x", 200), "can0", "vcan 1", "")
	f.Add("netns:1", "l", "can0", "can0", strings.Repeat("é", 120))
	f.Fuzz(func(t *testing.T, target, label, bus, inside, container string) {
		m := Meta{Target: target, Label: label, HostBus: bus, Inside: inside, Container: container}
		a, err := m.Alias()
		if err != nil {
			return
		}
		if len(a) > maxAlias {
			t.Fatalf("alias of %d bytes: %q", len(a), a)
		}
		got, ok := ParseAlias(a)
		if target == "" || bus == "" || inside == "" {
			return // not ours to parse back: ParseAlias needs these
		}
		if !ok || got.Target != target || got.HostBus != bus || got.Inside != inside || got.Container != container ||
			!strings.HasPrefix(label, got.Label) {
			t.Fatalf("ParseAlias(%q) = %+v, %v; from %+v", a, got, ok, m)
		}
	})
}
