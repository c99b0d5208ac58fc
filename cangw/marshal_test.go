package cangw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The expected bytes below are written out from the UAPI structs by hand
// (include/uapi/linux/can/gw.h, can.h, netlink.h), not produced by the encoder.

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// nla is struct nlattr {u16 nla_len; u16 nla_type} + payload, padded to 4.
func nla(typ uint16, payload ...[]byte) []byte {
	var p []byte
	for _, x := range payload {
		p = append(p, x...)
	}
	b := append(u16(uint16(4+len(p))), u16(typ)...)
	b = append(b, p...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func TestGoldenPlain(t *testing.T) {
	r := Rule{Src: 3, Dst: 5, Flags: FlagEcho | FlagFD}
	want := cat(
		[]byte{29, 1}, u16(0x9), // rtcanmsg: AF_CAN, CGW_TYPE_CAN_CAN, flags
		[]byte{8, 0}, u16(9), u32(3), // CGW_SRC_IF
		[]byte{8, 0}, u16(10), u32(5), // CGW_DST_IF
	)
	got, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

func TestGoldenClassicFull(t *testing.T) {
	var data [64]byte
	copy(data[:], []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88})
	crc := CRC8Checksum{FromIdx: 0, ToIdx: 6, ResultIdx: 7, InitCRCVal: 0xAA, FinalXORVal: 0x55,
		Profile: CRC8Profile16U8, ProfileData: seq(16, 0xE0)}
	for i := range crc.Table {
		crc.Table[i] = byte(255 - i)
	}
	r := Rule{
		Src: 7, Dst: 300, Flags: FlagSrcTimestamp,
		Filter:   &Filter{ID: 0x123, Mask: 0x7FF, Inverted: true},
		HopLimit: 1, UID: 0xDEADBEEF,
		Mods: []Modification{
			{Op: ModSET, Targets: ModID | ModLen, Frame: Frame{ID: 0x333, Len: 4, Data: data}},
			{Op: ModAND, Targets: ModData, Frame: Frame{ID: 0xFFFFFFFF, Len: 0xFF}},
		},
		XOR:  &XORChecksum{FromIdx: -8, ToIdx: -2, ResultIdx: -1, InitXORVal: 0x42},
		CRC8: &crc,
	}
	// struct can_frame: can_id, len, __pad, __res0, len8_dlc, data[8] at offset 8;
	// then the u8 modtype, packed: 17 bytes, padded to 20 on the wire.
	andMod := cat(u32(0xFFFFFFFF), []byte{0xFF, 0, 0, 0}, make([]byte, 8), []byte{0x04})
	setMod := cat(u32(0x333), []byte{4, 0, 0, 0}, data[:8], []byte{0x03})
	crcAttr := cat([]byte{0, 6, 7, 0xAA, 0x55}, tableBytes(crc.Table), []byte{2}, seq(16, 0xE0), make([]byte, 4))
	want := cat(
		[]byte{29, 1}, u16(0x2),
		nla(13, []byte{1}),                         // CGW_LIM_HOPS
		nla(1, andMod),                             // CGW_MOD_AND
		nla(4, setMod),                             // CGW_MOD_SET
		nla(14, u32(0xDEADBEEF)),                   // CGW_MOD_UID
		nla(6, crcAttr),                            // CGW_CS_CRC8
		nla(5, []byte{0xF8, 0xFE, 0xFF, 0x42}),     // CGW_CS_XOR: s8 -8, -2, -1
		nla(11, u32(0x123|0x20000000), u32(0x7FF)), // CGW_FILTER with CAN_INV_FILTER
		nla(9, u32(7)), nla(10, u32(300)),
	)
	if len(andMod) != 17 || len(crcAttr) != 282 || len(nla(1, andMod)) != 24 || len(nla(6, crcAttr)) != 288 {
		t.Fatal("test's struct sizes are wrong")
	}
	got, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

func tableBytes(t [256]uint8) []byte { return t[:] }

func TestGoldenFDMod(t *testing.T) {
	var data [64]byte
	copy(data[:], seq(64, 1))
	r := Rule{Src: 1, Dst: 2, Flags: FlagFD, Mods: []Modification{
		{Op: ModXOR, Targets: ModFlags | ModData, Frame: Frame{ID: 0x80000001, Len: 64, Flags: 0x01, Data: data}},
	}}
	// struct canfd_frame: can_id, len, flags, __res0, __res1, data[64]; + modtype = 73 bytes.
	mod := cat(u32(0x80000001), []byte{64, 0x01, 0, 0}, data[:], []byte{0x0C})
	want := cat([]byte{29, 1}, u16(0x8), nla(17, mod), nla(9, u32(1)), nla(10, u32(2)))
	if len(mod) != 73 || len(nla(17, mod)) != 80 {
		t.Fatal("test's struct sizes are wrong")
	}
	got, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

// A dump message as gw.c's cgw_put_job writes it, decoded.
func TestUnmarshalDump(t *testing.T) {
	msg := cat([]byte{29, 1}, u16(0x1),
		nla(7, u32(10)), nla(8, u32(2)), nla(12, u32(1)), // counters
		nla(2, cat(u32(0x100), []byte{1, 0xEE, 0xEE, 0xEE}, seq(8, 1), []byte{0x07})), // CGW_MOD_OR, junk in padding
		nla(11, u32(0x80000000|0x1234), u32(0x9FFFFFFF)),
		nla(99, []byte{1, 2, 3}), // unknown attribute: ignored
		nla(9, u32(4)), nla(10, u32(6)))
	var r Rule
	if err := r.UnmarshalBinary(msg); err != nil {
		t.Fatal(err)
	}
	var data [64]byte
	copy(data[:], seq(8, 1))
	want := Rule{Src: 4, Dst: 6, Flags: FlagEcho,
		Filter:  &Filter{ID: 0x80001234, Mask: 0x9FFFFFFF},
		Mods:    []Modification{{Op: ModOR, Targets: ModID | ModLen | ModData, Frame: Frame{ID: 0x100, Len: 1, Data: data}}},
		Handled: 10, Dropped: 2, Deleted: 1}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got  %+v\nwant %+v", r, want)
	}
}

func TestRoundTrip(t *testing.T) {
	var d64 [64]byte
	copy(d64[:], seq(64, 0x40))
	var d8 [64]byte
	copy(d8[:], seq(8, 0x10))
	tab := [256]uint8{1, 2, 3}
	rules := map[string]Rule{
		"plain":     {Src: 1, Dst: 2},
		"flags":     {Src: 1, Dst: 1, Flags: FlagEcho | FlagSrcTimestamp | FlagIIFTXOK | FlagFD},
		"filter":    {Src: 1, Dst: 2, Filter: &Filter{ID: 0x7FF, Mask: 0x7FF}},
		"inverted":  {Src: 1, Dst: 2, Filter: &Filter{ID: 0x100, Mask: 0x700, Inverted: true}},
		"eff-rtr":   {Src: 1, Dst: 2, Filter: &Filter{ID: 0xC0000001, Mask: 0xDFFFFFFF}},
		"hops":      {Src: 1, Dst: 2, HopLimit: 6},
		"counters":  {Src: 1, Dst: 2, Handled: 1, Dropped: 2, Deleted: 3},
		"allmods":   {Src: 1, Dst: 2, UID: 9, Mods: []Modification{{ModAND, ModID, Frame{ID: 0x7FF}}, {ModOR, ModLen, Frame{Len: 8}}, {ModXOR, ModData, Frame{Data: d8}}, {ModSET, ModID | ModLen | ModData, Frame{ID: 1, Len: 2, Data: d8}}}},
		"fdmods":    {Src: 1, Dst: 2, Flags: FlagFD, Mods: []Modification{{ModAND, ModFlags, Frame{Flags: 3}}, {ModOR, ModLen, Frame{Len: 64}}, {ModXOR, ModData, Frame{Data: d64}}, {ModSET, knownTargets, Frame{ID: 5, Len: 12, Flags: 1, Data: d64}}}},
		"xor":       {Src: 1, Dst: 2, Mods: []Modification{{ModAND, ModID, Frame{ID: ^uint32(0)}}}, XOR: &XORChecksum{0, 6, 7, 0xFF}},
		"crc8":      {Src: 1, Dst: 2, Flags: FlagFD, Mods: []Modification{{ModSET, ModData, Frame{}}}, CRC8: &CRC8Checksum{FromIdx: -64, ToIdx: 62, ResultIdx: 63, InitCRCVal: 1, FinalXORVal: 2, Table: tab, Profile: CRC8Profile1U8, ProfileData: []byte{0x99}}},
		"crc8-full": {Src: 1, Dst: 2, Mods: []Modification{{ModSET, ModData, Frame{}}}, CRC8: &CRC8Checksum{Profile: CRC8Profile16U8, ProfileData: seq(20, 1)}},
	}
	for name, r := range rules {
		t.Run(name, func(t *testing.T) {
			b, err := r.marshal()
			if err != nil {
				t.Fatal(err)
			}
			var got Rule
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("got  %+v\nwant %+v", got, r)
			}
			if !got.Equal(r) {
				t.Fatal("Equal is false after round trip")
			}
			if r.Handled == 0 {
				if err := r.Validate(); err != nil {
					t.Fatalf("test rule invalid: %v", err)
				}
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	hdr := []byte{29, 1, 0, 0}
	for typ, a := range attrs {
		if a.name == "" {
			continue
		}
		for _, l := range []int{0, a.len - 1, a.len + 1} {
			if l < 0 {
				continue
			}
			msg := cat(hdr, nla(uint16(typ), make([]byte, l)))
			var r Rule
			err := r.UnmarshalBinary(msg)
			want := fmt.Sprintf("cangw: %s: length %d, want %d", a.name, l, a.len)
			if err == nil || err.Error() != want {
				t.Errorf("type %d len %d: got %v, want %q", typ, l, err, want)
			}
		}
	}
	for name, msg := range map[string][]byte{
		"short":     {29, 1, 0},
		"family":    {2, 1, 0, 0},
		"gwtype":    {29, 2, 0, 0},
		"truncated": cat(hdr, []byte{8, 0, 9, 0, 1, 0}),
		"nla_len":   cat(hdr, []byte{3, 0, 9, 0}),
	} {
		var r Rule
		if err := r.UnmarshalBinary(msg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var r Rule
	if err := r.UnmarshalBinary(cat(hdr, nla(11, make([]byte, 4)))); err == nil || err.Error() != "cangw: CGW_FILTER: length 4, want 8" {
		t.Errorf("filter: %v", err)
	}
}

// The kernel reads only the modification attributes of the rule's kind.
func TestUnmarshalOtherKindModsIgnored(t *testing.T) {
	classic := nla(1, make([]byte, 17))
	fd := nla(15, make([]byte, 73))
	var r Rule
	if err := r.UnmarshalBinary(cat([]byte{29, 1}, u16(0), fd, classic)); err != nil {
		t.Fatal(err)
	}
	if len(r.Mods) != 1 || r.Mods[0].Op != ModAND {
		t.Fatalf("classic: %+v", r.Mods)
	}
	if err := r.UnmarshalBinary(cat([]byte{29, 1}, u16(8), fd, classic, nla(15, make([]byte, 73)))); err != nil {
		t.Fatal(err)
	}
	if len(r.Mods) != 1 {
		t.Fatalf("fd: %+v", r.Mods)
	}
}

func TestValidate(t *testing.T) {
	mod := []Modification{{Op: ModAND, Targets: ModID, Frame: Frame{ID: ^uint32(0)}}}
	var wide [64]byte
	wide[8] = 1
	for _, c := range []struct {
		r    Rule
		want string
	}{
		{Rule{Dst: 1}, "cangw: rule: Src interface index must be > 0"},
		{Rule{Src: 1, Dst: -1}, "Dst interface index must be > 0"},
		{Rule{Src: 1, Dst: 1}, "Src == Dst (1) needs FlagIIFTXOK"},
		{Rule{Src: 1, Dst: 2, Flags: 0x10}, "Flags has unknown bits 0x10"},
		{Rule{Src: 1, Dst: 2, Filter: &Filter{ID: 0x20000123}}, "cangw: rule: Filter.ID 0x20000123 has bits outside CAN_EFF_MASK|CAN_EFF_FLAG|CAN_RTR_FLAG"},
		{Rule{Src: 1, Dst: 2, HopLimit: 7}, "HopLimit 7 out of range 1..6"},
		{Rule{Src: 1, Dst: 2, UID: 5}, "UID 0x5 given without any modification: the kernel would accept the rule and silently drop the UID"},
		{Rule{Src: 1, Dst: 2, XOR: &XORChecksum{}}, "XOR checksum given without any modification"},
		{Rule{Src: 1, Dst: 2, CRC8: &CRC8Checksum{}}, "CRC8 checksum given without any modification"},
		{Rule{Src: 1, Dst: 2, Mods: []Modification{{Targets: ModID}}}, "Mods[0].Op 0 is not"},
		{Rule{Src: 1, Dst: 2, Mods: []Modification{{Op: ModOR}}}, "Mods[0] (OR) has no Targets"},
		{Rule{Src: 1, Dst: 2, Mods: []Modification{{Op: ModOR, Targets: 0x10}}}, "Mods[0].Targets has unknown bits 0x10"},
		{Rule{Src: 1, Dst: 2, Mods: []Modification{{Op: ModOR, Targets: ModFlags}}}, "Mods[0].Targets: ModFlags is only valid on a CAN FD rule"},
		{Rule{Src: 1, Dst: 2, Mods: []Modification{{Op: ModOR, Targets: ModID, Frame: Frame{Flags: 1}}}}, "Mods[0].Frame.Flags must be 0 on a classic rule"},
		{Rule{Src: 1, Dst: 2, Mods: []Modification{{Op: ModOR, Targets: ModData, Frame: Frame{Data: wide}}}}, "Mods[0].Frame.Data[8:] must be zero on a classic rule"},
		{Rule{Src: 1, Dst: 2, Mods: append(mod, Modification{Op: ModAND, Targets: ModData})}, "Mods[1] is a second AND modification (first is Mods[0])"},
		{Rule{Src: 1, Dst: 2, Mods: mod, XOR: &XORChecksum{ResultIdx: 8}}, "XOR.ResultIdx 8 out of range -8..7 for a classic rule"},
		{Rule{Src: 1, Dst: 2, Mods: mod, XOR: &XORChecksum{FromIdx: -9}}, "XOR.FromIdx -9 out of range -8..7"},
		{Rule{Src: 1, Dst: 2, Flags: FlagFD, Mods: mod, CRC8: &CRC8Checksum{ToIdx: 64}}, "CRC8.ToIdx 64 out of range -64..63 for a CAN FD rule"},
		{Rule{Src: 1, Dst: 2, Mods: mod, CRC8: &CRC8Checksum{Profile: 4}}, "CRC8.Profile 4 is unknown"},
		{Rule{Src: 1, Dst: 2, Mods: mod, CRC8: &CRC8Checksum{ProfileData: make([]byte, 21)}}, "CRC8.ProfileData has 21 bytes, at most 20"},
	} {
		err := c.r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.r, err, c.want)
		}
		if _, err := c.r.MarshalBinary(); err == nil {
			t.Errorf("%+v: MarshalBinary accepted it", c.r)
		}
	}
	ok := []Rule{
		{Src: 1, Dst: 1, Flags: FlagIIFTXOK},
		{Src: 1, Dst: 2, Filter: &Filter{ID: 0xDFFFFFFF &^ 0x20000000, Mask: 0xFFFFFFFF}},
		{Src: 1, Dst: 2, HopLimit: 6, UID: 1, Mods: mod, XOR: &XORChecksum{-8, 7, -1, 0}},
		{Src: 1, Dst: 2, Flags: FlagFD, Mods: []Modification{{Op: ModSET, Targets: ModFlags, Frame: Frame{Flags: 3, Data: wide}}}, CRC8: &CRC8Checksum{FromIdx: -64, ToIdx: 63, ProfileData: make([]byte, 20)}},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestEqual(t *testing.T) {
	mod := []Modification{{Op: ModAND, Targets: ModID, Frame: Frame{ID: ^uint32(0)}}}
	base := Rule{Src: 1, Dst: 2, Mods: mod}
	same := []Rule{
		{Src: 1, Dst: 2, Mods: mod, Handled: 5, Dropped: 1, Deleted: 7},
		{Src: 1, Dst: 2, Mods: mod, Filter: &Filter{}},
	}
	for _, r := range same {
		if !base.Equal(r) || !r.Equal(base) {
			t.Errorf("%+v should equal %+v", r, base)
		}
	}
	other := []Rule{
		{Src: 1, Dst: 2},
		{Src: 2, Dst: 2, Mods: mod},
		{Src: 1, Dst: 3, Mods: mod},
		{Src: 1, Dst: 2, Mods: mod, Flags: FlagEcho},
		{Src: 1, Dst: 2, Mods: mod, HopLimit: 1},
		{Src: 1, Dst: 2, Mods: mod, Filter: &Filter{Inverted: true}},
		{Src: 1, Dst: 2, Mods: mod, UID: 1},
		{Src: 1, Dst: 2, Mods: mod, XOR: &XORChecksum{}},
		{Src: 1, Dst: 2, Mods: []Modification{{Op: ModOR, Targets: ModID, Frame: Frame{ID: ^uint32(0)}}}},
		{Src: 1, Dst: 2, Mods: []Modification{{Op: ModAND, Targets: ModID, Frame: Frame{ID: 1}}}},
	}
	for _, r := range other {
		if base.Equal(r) || r.Equal(base) {
			t.Errorf("%+v should differ from %+v", r, base)
		}
	}
	// With a UID on both, the kernel matches on the UID and ignores the mods.
	a := Rule{Src: 1, Dst: 2, UID: 7, Mods: mod}
	b := Rule{Src: 1, Dst: 2, UID: 7, Mods: []Modification{{Op: ModSET, Targets: ModData}}}
	if !a.Equal(b) {
		t.Error("same UID should match")
	}
	// Without modifications the kernel drops UID and checksums.
	if !(Rule{Src: 1, Dst: 2, UID: 7, XOR: &XORChecksum{}}).Equal(Rule{Src: 1, Dst: 2}) {
		t.Error("UID and checksum without mods should be ignored")
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		Flags(0).String():                                 "0",
		(FlagEcho | FlagFD).String():                      "ECHO|FD",
		(FlagSrcTimestamp | FlagIIFTXOK | 0x100).String(): "SRC_TSTAMP|IIF_TX_OK|0x100",
		(ModID | ModLen | ModData).String():               "ILD",
		(ModFlags | ModData).String():                     "FD",
		ModTarget(0).String():                             "0",
		ModTarget(0x31).String():                          "I|0x30",
		ModXOR.String():                                   "XOR",
		ModOp(9).String():                                 "ModOp(9)",
		CRC8ProfileSFFIDXOR.String():                      "SFFID_XOR",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestKernelError(t *testing.T) {
	r := &Rule{Src: 4, Dst: 5, HopLimit: 3}
	maxHopsParam = "/nonexistent"
	for _, c := range []struct {
		op   string
		err  error
		is   []error
		want string
	}{
		{"delete", unix.EINVAL, []error{ErrNoSuchRule, unix.EINVAL}, "no such rule (delete needs an exact match"},
		{"add", unix.ENODEV, []error{unix.ENODEV}, "interface index 4 or 5 does not exist"},
		{"add", unix.EPERM, []error{unix.EPERM}, "needs CAP_NET_ADMIN in the initial user namespace"},
		{"flush", unix.EACCES, []error{unix.EACCES}, "CAP_NET_ADMIN"},
		{"add", unix.EOPNOTSUPP, []error{ErrNotLoaded, unix.EOPNOTSUPP}, "modprobe can-gw"},
		{"add", unix.ENOENT, []error{ErrNotLoaded}, "modprobe can-gw"},
		{"add", unix.EAFNOSUPPORT, []error{ErrNotLoaded}, "modprobe can-gw"},
		{"add", unix.EINVAL, []error{unix.EINVAL}, "HopLimit 3 exceeds the can-gw module parameter max_hops"},
	} {
		err := kernelError(c.op, r, c.err)
		for _, target := range c.is {
			if !errors.Is(err, target) {
				t.Errorf("%v: not errors.Is %v", err, target)
			}
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want %q", err, c.want)
		}
	}
}
