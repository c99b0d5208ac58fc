//go:build kernel

package cangw_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/nl"
)

// These tests need a kernel with can-gw, vcan and can-raw, and root: they
// run in a QEMU guest (make kernel-tests). Each test works in its own
// network namespace, so Flush there never touches other tests' rules.

const wait = 2 * time.Second

type env struct {
	c      *cangw.Conn
	ns     *kerneltest.NS
	vcan   []int // ifindexes of vcan0, vcan1, ...
	ifname []string
}

// setup creates a network namespace with n vcan interfaces (CAN FD capable)
// and a Conn in it.
func setup(t *testing.T, n int) *env {
	t.Helper()
	kerneltest.Require(t)
	if _, stderr, code := kerneltest.Run(t, "modprobe", "can-gw"); code != 0 {
		t.Fatalf("modprobe can-gw: %s", stderr)
	}
	e := &env{ns: kerneltest.NewNS(t)}
	e.ns.Do(t, func() {
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("vcan%d", i)
			e.vcan = append(e.vcan, kerneltest.VCAN(t, name, 72))
			e.ifname = append(e.ifname, name)
		}
	})
	f, err := os.Open(e.ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.c, err = cangw.DialConfig(nl.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.c.Flush(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		e.c.Close()
	})
	return e
}

func (e *env) list(t *testing.T) []cangw.Rule {
	t.Helper()
	rules, err := e.c.List()
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// cangwTool runs can-utils' cangw in the test's namespace.
func (e *env) cangwTool(t *testing.T, args ...string) (string, int) {
	t.Helper()
	stdout, stderr, code := kerneltest.Run(t, "nsenter", append([]string{"--net=" + e.ns.Path(), "cangw"}, args...)...)
	return strings.TrimSpace(stdout + stderr), code
}

// listTool returns `cangw -L`. cangw exits with the byte count of its
// request (non-zero) after a successful list, so the exit code says nothing.
func (e *env) listTool(t *testing.T) string {
	t.Helper()
	out, _ := e.cangwTool(t, "-L")
	if !strings.HasPrefix(out, "cangw -A ") || strings.Contains(out, "NLMSG_ERROR") {
		t.Fatalf("cangw -L: %q", out)
	}
	return out
}

func TestAddListDeleteFlush(t *testing.T) {
	e := setup(t, 3)
	rules := []cangw.Rule{
		{Src: e.vcan[0], Dst: e.vcan[1]},
		{Src: e.vcan[1], Dst: e.vcan[0], Flags: cangw.FlagEcho},
		{Src: e.vcan[0], Dst: e.vcan[2], Filter: &cangw.Filter{ID: 0x100, Mask: 0x700}},
	}
	for _, r := range rules {
		if err := e.c.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	got := e.list(t)
	if len(got) != 3 {
		t.Fatalf("List: %d rules, want 3: %+v", len(got), got)
	}
	for _, r := range rules {
		if n := count(got, r); n != 1 {
			t.Errorf("rule %+v listed %d times", r, n)
		}
	}
	if err := e.c.Delete(rules[1]); err != nil {
		t.Fatal(err)
	}
	got = e.list(t)
	if len(got) != 2 || count(got, rules[1]) != 0 {
		t.Fatalf("after Delete: %+v", got)
	}
	if err := e.c.Flush(); err != nil {
		t.Fatal(err)
	}
	if got = e.list(t); len(got) != 0 {
		t.Fatalf("after Flush: %+v", got)
	}
}

func count(rules []cangw.Rule, r cangw.Rule) int {
	n := 0
	for _, x := range rules {
		if x.Equal(r) {
			n++
		}
	}
	return n
}

func TestCountersAndDuplicates(t *testing.T) {
	e := setup(t, 2)
	// FlagEcho: vcan delivers a frame to local sockets only when it is
	// sent with the echo flag.
	r := cangw.Rule{Src: e.vcan[0], Dst: e.vcan[1], Flags: cangw.FlagEcho}
	if err := e.c.Add(r); err != nil {
		t.Fatal(err)
	}
	tx := kerneltest.Open(t, e.ns, "vcan0")
	rx := kerneltest.Open(t, e.ns, "vcan1")
	var want []kerneltest.Frame
	for i := 0; i < 5; i++ {
		f := kerneltest.Frame{ID: 0x100 + uint32(i), Data: []byte{byte(i), 0xAA}}
		tx.Send(t, f)
		want = append(want, f)
	}
	rx.Expect(t, want, wait)
	got := e.list(t)
	if len(got) != 1 || got[0].Handled != 5 || got[0].Dropped != 0 || got[0].Deleted != 0 {
		t.Fatalf("List: %+v, want Handled 5", got)
	}

	// No duplicate check: the same rule again forwards every frame twice.
	if err := e.c.Add(r); err != nil {
		t.Fatal(err)
	}
	if got := e.list(t); len(got) != 2 {
		t.Fatalf("List after second Add: %d rules, want 2", len(got))
	}
	f := kerneltest.Frame{ID: 0x7FF, Data: []byte{1}}
	tx.Send(t, f)
	rx.Expect(t, []kerneltest.Frame{f, f}, wait)
}

func TestFDAndClassicRules(t *testing.T) {
	e := setup(t, 3)
	fdRule := cangw.Rule{Src: e.vcan[0], Dst: e.vcan[1], Flags: cangw.FlagFD | cangw.FlagEcho}
	ccRule := cangw.Rule{Src: e.vcan[0], Dst: e.vcan[2], Flags: cangw.FlagEcho}
	for _, r := range []cangw.Rule{fdRule, ccRule} {
		if err := e.c.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	tx := kerneltest.Open(t, e.ns, "vcan0")
	rxFD := kerneltest.Open(t, e.ns, "vcan1")
	rxCC := kerneltest.Open(t, e.ns, "vcan2")
	cc := kerneltest.Frame{ID: 0x10, Data: []byte{1, 2}}
	fd := kerneltest.Frame{ID: 0x20, FD: true, Data: make([]byte, 12)}
	ccMark := kerneltest.Frame{ID: 0x7F0, Data: []byte{0xEE}}
	fdMark := kerneltest.Frame{ID: 0x7F1, FD: true, Data: []byte{0xEE}}
	for _, f := range []kerneltest.Frame{cc, fd, fdMark, ccMark} {
		tx.Send(t, f)
	}
	rxFD.ExpectOnlyUntil(t, []kerneltest.Frame{fd}, fdMark, wait)
	rxCC.ExpectOnlyUntil(t, []kerneltest.Frame{cc}, ccMark, wait)
	for _, r := range e.list(t) {
		if r.Handled != 2 {
			t.Errorf("rule %v: Handled %d, want 2", r.Flags, r.Handled)
		}
	}
}

// A classic rule that rewrites the id, masks the data and adds an XOR checksum.
func TestModificationsForwarded(t *testing.T) {
	e := setup(t, 2)
	var and [64]byte
	copy(and[:], []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0F, 0x0F, 0x00})
	r := cangw.Rule{Src: e.vcan[0], Dst: e.vcan[1], Flags: cangw.FlagEcho,
		Mods: []cangw.Modification{
			{Op: cangw.ModAND, Targets: cangw.ModData, Frame: cangw.Frame{Data: and}},
			{Op: cangw.ModSET, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x321}},
		},
		XOR: &cangw.XORChecksum{FromIdx: 0, ToIdx: 6, ResultIdx: 7, InitXORVal: 0xA5},
	}
	if err := e.c.Add(r); err != nil {
		t.Fatal(err)
	}
	tx := kerneltest.Open(t, e.ns, "vcan0")
	rx := kerneltest.Open(t, e.ns, "vcan1")
	in := []byte{0x10, 0x20, 0x30, 0x40, 0x5F, 0x6F, 0x7F, 0x99}
	out := make([]byte, 8)
	xor := byte(0xA5)
	for i := 0; i < 7; i++ {
		out[i] = in[i] & and[i]
		xor ^= out[i]
	}
	out[7] = xor
	tx.Send(t, kerneltest.Frame{ID: 0x123, Data: in})
	rx.Expect(t, []kerneltest.Frame{{ID: 0x321, Data: out}}, wait)
}

func TestDeleteNeedsExactMatch(t *testing.T) {
	e := setup(t, 3)
	r := cangw.Rule{Src: e.vcan[0], Dst: e.vcan[1], Flags: cangw.FlagEcho, HopLimit: 1,
		Filter: &cangw.Filter{ID: 0x123, Mask: 0x7FF},
		Mods:   []cangw.Modification{{Op: cangw.ModOR, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x400}}}}
	if err := e.c.Add(r); err != nil {
		t.Fatal(err)
	}
	near := map[string]func(*cangw.Rule){
		"no echo":      func(x *cangw.Rule) { x.Flags = 0 },
		"extra flag":   func(x *cangw.Rule) { x.Flags |= cangw.FlagSrcTimestamp },
		"no hop limit": func(x *cangw.Rule) { x.HopLimit = 0 },
		"no filter":    func(x *cangw.Rule) { x.Filter = nil },
		"inverted":     func(x *cangw.Rule) { x.Filter = &cangw.Filter{ID: 0x123, Mask: 0x7FF, Inverted: true} },
		"other dst":    func(x *cangw.Rule) { x.Dst = e.vcan[2] },
		"other mod": func(x *cangw.Rule) {
			x.Mods = []cangw.Modification{{Op: cangw.ModOR, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x401}}}
		},
		"no mod": func(x *cangw.Rule) { x.Mods = nil },
		"other op": func(x *cangw.Rule) {
			x.Mods = []cangw.Modification{{Op: cangw.ModXOR, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x400}}}
		},
	}
	for name, change := range near {
		x := r
		change(&x)
		if x.Equal(r) {
			t.Errorf("%s: Equal says it matches", name)
		}
		err := e.c.Delete(x)
		if !errors.Is(err, cangw.ErrNoSuchRule) || !errors.Is(err, unix.EINVAL) {
			t.Errorf("%s: Delete returned %v, want ErrNoSuchRule/EINVAL", name, err)
		}
		if n := len(e.list(t)); n != 1 {
			t.Fatalf("%s: %d rules left, want 1", name, n)
		}
	}
	listed := e.list(t)[0]
	if !listed.Equal(r) {
		t.Fatalf("listed %+v does not Equal added %+v", listed, r)
	}
	if err := e.c.Delete(listed); err != nil {
		t.Fatal(err)
	}
	if n := len(e.list(t)); n != 0 {
		t.Fatalf("%d rules left after exact Delete", n)
	}
}

func TestUIDWithoutModification(t *testing.T) {
	e := setup(t, 2)
	err := e.c.Add(cangw.Rule{Src: e.vcan[0], Dst: e.vcan[1], UID: 0x42})
	if err == nil || !strings.Contains(err.Error(), "without any modification") {
		t.Fatalf("Add: %v, want the uid-without-modification error", err)
	}
	if n := len(e.list(t)); n != 0 {
		t.Fatalf("%d rules after rejected Add", n)
	}
	// What the kernel does with such a request: accepts it, drops the uid.
	if out, code := e.cangwTool(t, "-A", "-s", "vcan0", "-d", "vcan1", "-u", "42"); code != 0 {
		t.Fatalf("cangw -A -u: %s", out)
	}
	got := e.list(t)
	if len(got) != 1 || got[0].UID != 0 {
		t.Fatalf("after cangw -u without -m: %+v, want one rule without UID", got)
	}
}

func TestKernelErrors(t *testing.T) {
	e := setup(t, 2)
	err := e.c.Add(cangw.Rule{Src: e.vcan[0], Dst: 9999})
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("Add to missing ifindex: %v, want ENODEV", err)
	}
	lo := 1 // loopback: exists but is not CAN
	err = e.c.Add(cangw.Rule{Src: lo, Dst: e.vcan[0]})
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("Add from lo: %v, want ENODEV", err)
	}
	if err := e.c.Add(cangw.Rule{Src: e.vcan[0], Dst: e.vcan[0], Flags: cangw.FlagIIFTXOK}); err != nil {
		t.Errorf("Src == Dst with FlagIIFTXOK: %v", err)
	}
}

// crc8Table is CRC-8 with polynomial 0x1D (SAE J1850).
func crc8Table() (t [256]uint8) {
	for i := range t {
		c := uint8(i)
		for b := 0; b < 8; b++ {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x1D
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}

func hexBytes(b []byte) string { return strings.ToUpper(fmt.Sprintf("%x", b)) }

func data(b ...byte) (d [64]byte) {
	copy(d[:], b)
	return d
}

// TestInteropCangw adds each rule shape once with can-utils' cangw and once
// with this package: List must decode the tool's rule as expected, Delete
// must remove it, and `cangw -L` must print the package's rule exactly as
// it prints the tool's.
func TestInteropCangw(t *testing.T) {
	e := setup(t, 2)
	a, b := e.vcan[0], e.vcan[1]
	tab := crc8Table()
	var fdData [64]byte
	for i := range fdData {
		fdData[i] = byte(i * 3)
	}
	noop := cangw.Modification{Op: cangw.ModAND, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0xFFFFFFFF}}
	shapes := []struct {
		name string
		args []string
		want cangw.Rule
	}{
		{"plain", nil, cangw.Rule{}},
		{"echo", []string{"-e"}, cangw.Rule{Flags: cangw.FlagEcho}},
		{"timestamp", []string{"-t"}, cangw.Rule{Flags: cangw.FlagSrcTimestamp}},
		{"iif-tx-ok", []string{"-i"}, cangw.Rule{Flags: cangw.FlagIIFTXOK}},
		{"fd", []string{"-X"}, cangw.Rule{Flags: cangw.FlagFD}},
		{"all-flags", []string{"-X", "-e", "-t", "-i"}, cangw.Rule{Flags: cangw.FlagFD | cangw.FlagEcho | cangw.FlagSrcTimestamp | cangw.FlagIIFTXOK}},
		{"filter", []string{"-f", "123:7FF"}, cangw.Rule{Filter: &cangw.Filter{ID: 0x123, Mask: 0x7FF}}},
		{"filter-inverted", []string{"-f", "123~7FF"}, cangw.Rule{Filter: &cangw.Filter{ID: 0x123, Mask: 0x7FF, Inverted: true}}},
		{"filter-eff", []string{"-f", "80012345:DFFFFFFF"}, cangw.Rule{Filter: &cangw.Filter{ID: 0x80012345, Mask: 0xDFFFFFFF}}},
		{"hop-limit", []string{"-l", "1"}, cangw.Rule{HopLimit: 1}},
		{"uid-mod", []string{"-u", "1234", "-m", "AND:I:FFFFFFFF.0.0000000000000000"},
			cangw.Rule{UID: 0x1234, Mods: []cangw.Modification{noop}}},
		{"classic-mods", []string{
			"-m", "AND:ILD:7FF.F.FFFFFFFF00FF00FF",
			"-m", "OR:I:400.0.0000000000000000",
			"-m", "XOR:L:0.1.0000000000000000",
			"-m", "SET:D:0.0.1122334455667788"},
			cangw.Rule{Mods: []cangw.Modification{
				{Op: cangw.ModAND, Targets: cangw.ModID | cangw.ModLen | cangw.ModData, Frame: cangw.Frame{ID: 0x7FF, Len: 0xF, Data: data(0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0, 0xFF)}},
				{Op: cangw.ModOR, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x400}},
				{Op: cangw.ModXOR, Targets: cangw.ModLen, Frame: cangw.Frame{Len: 1}},
				{Op: cangw.ModSET, Targets: cangw.ModData, Frame: cangw.Frame{Data: data(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88)}},
			}}},
		{"fd-mods", []string{"-X",
			"-M", "SET:IFLD:123.1.C." + hexBytes(fdData[:]),
			"-M", "AND:F:0.2.0." + strings.Repeat("00", 64)},
			cangw.Rule{Flags: cangw.FlagFD, Mods: []cangw.Modification{
				{Op: cangw.ModAND, Targets: cangw.ModFlags, Frame: cangw.Frame{Flags: 2}},
				{Op: cangw.ModSET, Targets: cangw.ModID | cangw.ModFlags | cangw.ModLen | cangw.ModData, Frame: cangw.Frame{ID: 0x123, Flags: 1, Len: 12, Data: fdData}},
			}}},
		{"xor-checksum", []string{"-m", "SET:I:333.0.0000000000000000", "-x", "0:6:7:AA"},
			cangw.Rule{Mods: []cangw.Modification{{Op: cangw.ModSET, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x333}}},
				XOR: &cangw.XORChecksum{FromIdx: 0, ToIdx: 6, ResultIdx: 7, InitXORVal: 0xAA}}},
		{"xor-relative", []string{"-m", "SET:I:333.0.0000000000000000", "-x", "-8:-2:-1:0"},
			cangw.Rule{Mods: []cangw.Modification{{Op: cangw.ModSET, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x333}}},
				XOR: &cangw.XORChecksum{FromIdx: -8, ToIdx: -2, ResultIdx: -1}}},
		{"crc8-1u8", []string{"-m", "XOR:D:0.0.00000000000000FF", "-c", "0:6:7:FF:0F:" + hexBytes(tab[:]), "-p", "1:5A"},
			cangw.Rule{Mods: []cangw.Modification{{Op: cangw.ModXOR, Targets: cangw.ModData, Frame: cangw.Frame{Data: data(0, 0, 0, 0, 0, 0, 0, 0xFF)}}},
				CRC8: &cangw.CRC8Checksum{FromIdx: 0, ToIdx: 6, ResultIdx: 7, InitCRCVal: 0xFF, FinalXORVal: 0x0F, Table: tab, Profile: cangw.CRC8Profile1U8, ProfileData: []byte{0x5A}}}},
		{"crc8-16u8-fd", []string{"-X", "-M", "SET:L:0.0.40." + strings.Repeat("00", 64), "-c", "1:62:0:0:0:" + hexBytes(tab[:]), "-p", "2:00112233445566778899AABBCCDDEEFF"},
			cangw.Rule{Flags: cangw.FlagFD, Mods: []cangw.Modification{{Op: cangw.ModSET, Targets: cangw.ModLen, Frame: cangw.Frame{Len: 64}}},
				CRC8: &cangw.CRC8Checksum{FromIdx: 1, ToIdx: 62, ResultIdx: 0, Table: tab, Profile: cangw.CRC8Profile16U8,
					ProfileData: []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF}}}},
		{"crc8-sffid", []string{"-m", "AND:I:FFFFFFFF.0.0000000000000000", "-c", "0:6:7:0:0:" + hexBytes(tab[:]), "-p", "3"},
			cangw.Rule{Mods: []cangw.Modification{noop},
				CRC8: &cangw.CRC8Checksum{ToIdx: 6, ResultIdx: 7, Table: tab, Profile: cangw.CRC8ProfileSFFIDXOR}}},
		{"everything", []string{"-e", "-l", "1", "-f", "100~700", "-u", "77", "-m", "SET:IL:333.4.0000000000000000", "-x", "0:2:3:1"},
			cangw.Rule{Flags: cangw.FlagEcho, HopLimit: 1, Filter: &cangw.Filter{ID: 0x100, Mask: 0x700, Inverted: true}, UID: 0x77,
				Mods: []cangw.Modification{{Op: cangw.ModSET, Targets: cangw.ModID | cangw.ModLen, Frame: cangw.Frame{ID: 0x333, Len: 4}}},
				XOR:  &cangw.XORChecksum{ToIdx: 2, ResultIdx: 3, InitXORVal: 1}}},
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			want := s.want
			want.Src, want.Dst = a, b
			if err := want.Validate(); err != nil {
				t.Fatalf("test rule invalid: %v", err)
			}
			if err := e.c.Flush(); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-A", "-s", "vcan0", "-d", "vcan1"}, s.args...)
			if out, code := e.cangwTool(t, args...); code != 0 {
				t.Fatalf("cangw %s: exit %d: %s", strings.Join(args, " "), code, out)
			}
			toolLine := e.listTool(t)
			got := e.list(t)
			if len(got) != 1 {
				t.Fatalf("List after cangw -A: %d rules", len(got))
			}
			if !reflect.DeepEqual(got[0], want) {
				t.Errorf("List decoded the tool's rule as\n%+v\nwant\n%+v", got[0], want)
			}
			if err := e.c.Delete(want); err != nil {
				t.Fatalf("Delete of the tool's rule: %v", err)
			}
			if n := len(e.list(t)); n != 0 {
				t.Fatalf("%d rules after Delete", n)
			}

			if err := e.c.Add(want); err != nil {
				t.Fatal(err)
			}
			ourLine := e.listTool(t)
			if ourLine != toolLine {
				t.Errorf("cangw -L of our rule:\n%s\nof the tool's rule:\n%s", ourLine, toolLine)
			}
			// And the tool's delete matches our rule exactly.
			args[0] = "-D"
			if out, code := e.cangwTool(t, args...); code != 0 {
				t.Fatalf("cangw -D: exit %d: %s", code, out)
			}
			if n := len(e.list(t)); n != 0 {
				t.Fatalf("%d rules after cangw -D", n)
			}
		})
	}
}
