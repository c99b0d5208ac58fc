package cangw

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kanto-can/kanto-can/nl"
)

// All multi-byte fields of rtcanmsg, the attributes and the CAN structs are
// in host byte order.
var ne = binary.NativeEndian

// MarshalBinary returns the rule as the payload of an RTM_NEWROUTE or
// RTM_DELROUTE message: struct rtcanmsg followed by the CGW_* attributes,
// in the order the kernel dumps them. Non-zero counters are included as in
// a dump (the kernel ignores them in requests). The rule is validated first.
func (r Rule) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r.marshal()
}

// UnmarshalBinary decodes the payload of an RTM_NEWROUTE message as the
// kernel sends it in a dump. Attributes of unknown type are ignored;
// modification attributes of the other frame kind (classic on a FD rule and
// vice versa) are ignored too, as the kernel does. A known attribute with the
// wrong length is an error that names it.
func (r *Rule) UnmarshalBinary(b []byte) error {
	if len(b) < rtcanmsgLen {
		return fmt.Errorf("cangw: message of %d bytes is shorter than struct rtcanmsg (4)", len(b))
	}
	if b[0] != afCAN {
		return fmt.Errorf("cangw: rtcanmsg family %d, want AF_CAN (%d): %w", b[0], afCAN, errNotCAN)
	}
	if b[1] != cgwTypeCANCAN {
		return fmt.Errorf("cangw: rtcanmsg gwtype %d, want CGW_TYPE_CAN_CAN (%d)", b[1], cgwTypeCANCAN)
	}
	n := Rule{Flags: Flags(ne.Uint16(b[2:4]))}
	fd := n.Flags&FlagFD != 0

	ad, err := nl.NewAttributeDecoder(b[rtcanmsgLen:])
	if err != nil {
		return fmt.Errorf("cangw: attributes: %w", err)
	}
	var mods [ModSET + 1]*Modification
	for ad.Next() {
		typ := ad.Type()
		data := ad.Bytes()
		if int(typ) >= len(attrs) || attrs[typ].name == "" {
			continue // newer kernel: ignore what we do not know
		}
		if a := attrs[typ]; len(data) != a.len {
			return fmt.Errorf("cangw: %s: length %d, want %d", a.name, len(data), a.len)
		}
		switch typ {
		case cgwModAND, cgwModOR, cgwModXOR, cgwModSET:
			if !fd {
				mods[typ] = &Modification{Op: ModOp(typ), Targets: ModTarget(data[canFrameLen]), Frame: decodeFrame(data, false)}
			}
		case cgwFDModAND, cgwFDModOR, cgwFDModXOR, cgwFDModSET:
			if fd {
				op := ModOp(typ-cgwFDModAND) + ModAND
				mods[op] = &Modification{Op: op, Targets: ModTarget(data[canFDFrameLen]), Frame: decodeFrame(data, true)}
			}
		case cgwCSXOR:
			n.XOR = &XORChecksum{FromIdx: int8(data[0]), ToIdx: int8(data[1]), ResultIdx: int8(data[2]), InitXORVal: data[3]}
		case cgwCSCRC8:
			n.CRC8 = decodeCRC8(data)
		case cgwHandled:
			n.Handled = ne.Uint32(data)
		case cgwDropped:
			n.Dropped = ne.Uint32(data)
		case cgwDeleted:
			n.Deleted = ne.Uint32(data)
		case cgwSrcIf:
			n.Src = int(ne.Uint32(data))
		case cgwDstIf:
			n.Dst = int(ne.Uint32(data))
		case cgwFilter:
			f := filterFromWire(ne.Uint32(data[0:4]), ne.Uint32(data[4:8]))
			n.Filter = &f
		case cgwLimHops:
			n.HopLimit = data[0]
		case cgwModUID:
			n.UID = ne.Uint32(data)
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("cangw: attributes: %w", err)
	}
	for _, m := range mods {
		if m != nil {
			n.Mods = append(n.Mods, *m)
		}
	}
	*r = n
	return nil
}

var errNotCAN = errors.New("not an AF_CAN message")

// attrs are the attributes UnmarshalBinary checks: each one's name, for
// errors, and payload length (gw.h, cgw_policy). An array indexed by type,
// not a map: it is data in the binary, with nothing to build at start-up.
var attrs = [...]struct {
	name string
	len  int
}{
	cgwModAND: {"CGW_MOD_AND", modAttrLen}, cgwModOR: {"CGW_MOD_OR", modAttrLen},
	cgwModXOR: {"CGW_MOD_XOR", modAttrLen}, cgwModSET: {"CGW_MOD_SET", modAttrLen},
	cgwCSXOR: {"CGW_CS_XOR", csXORLen}, cgwCSCRC8: {"CGW_CS_CRC8", csCRC8Len},
	cgwHandled: {"CGW_HANDLED", 4}, cgwDropped: {"CGW_DROPPED", 4},
	cgwSrcIf: {"CGW_SRC_IF", 4}, cgwDstIf: {"CGW_DST_IF", 4},
	cgwFilter: {"CGW_FILTER", canFilterLen}, cgwDeleted: {"CGW_DELETED", 4},
	cgwLimHops: {"CGW_LIM_HOPS", 1}, cgwModUID: {"CGW_MOD_UID", 4},
	cgwFDModAND: {"CGW_FDMOD_AND", fdModAttrLen}, cgwFDModOR: {"CGW_FDMOD_OR", fdModAttrLen},
	cgwFDModXOR: {"CGW_FDMOD_XOR", fdModAttrLen}, cgwFDModSET: {"CGW_FDMOD_SET", fdModAttrLen},
}

// header returns struct rtcanmsg.
func header(flags Flags) []byte {
	b := []byte{afCAN, cgwTypeCANCAN, 0, 0}
	ne.PutUint16(b[2:], uint16(flags))
	return b
}

// marshal encodes without validation (List output, tests, fuzzing).
func (r Rule) marshal() ([]byte, error) {
	fd := r.Flags&FlagFD != 0
	ae := nl.NewAttributeEncoder()
	for _, c := range []struct {
		typ uint16
		v   uint32
	}{{cgwHandled, r.Handled}, {cgwDropped, r.Dropped}, {cgwDeleted, r.Deleted}} {
		if c.v != 0 {
			ae.Uint32(c.typ, c.v)
		}
	}
	if r.HopLimit != 0 {
		ae.Uint8(cgwLimHops, r.HopLimit)
	}
	for op := ModAND; op <= ModSET; op++ { // the kernel's order
		for _, m := range r.Mods {
			if m.Op == op {
				ae.Bytes(op.attr(fd), encodeMod(m, fd))
			}
		}
	}
	if r.UID != 0 {
		ae.Uint32(cgwModUID, r.UID)
	}
	if r.CRC8 != nil {
		ae.Bytes(cgwCSCRC8, encodeCRC8(*r.CRC8))
	}
	if r.XOR != nil {
		ae.Bytes(cgwCSXOR, encodeXOR(*r.XOR))
	}
	if r.Filter != nil {
		b := make([]byte, canFilterLen)
		id, mask := r.Filter.wire()
		ne.PutUint32(b[0:], id)
		ne.PutUint32(b[4:], mask)
		ae.Bytes(cgwFilter, b)
	}
	ae.Uint32(cgwSrcIf, uint32(r.Src))
	ae.Uint32(cgwDstIf, uint32(r.Dst))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("cangw: encode: %w", err)
	}
	return append(header(r.Flags), attrs...), nil
}

// encodeMod returns struct cgw_frame_mod (17 bytes) or cgw_fdframe_mod (73).
//
//	can_frame:   can_id u32 | len u8 | __pad | __res0 | len8_dlc | data[8] (offset 8)
//	canfd_frame: can_id u32 | len u8 | flags u8 | __res0 | __res1 | data[64] (offset 8)
func encodeMod(m Modification, fd bool) []byte {
	size, dlen := canFrameLen, canMaxDLen
	if fd {
		size, dlen = canFDFrameLen, canFDMaxDLen
	}
	b := make([]byte, size+1)
	ne.PutUint32(b[0:], m.Frame.ID)
	b[4] = m.Frame.Len
	if fd {
		b[5] = m.Frame.Flags
	}
	copy(b[8:8+dlen], m.Frame.Data[:dlen])
	b[size] = uint8(m.Targets)
	return b
}

func decodeFrame(b []byte, fd bool) Frame {
	f := Frame{ID: ne.Uint32(b[0:4]), Len: b[4]}
	dlen := canMaxDLen
	if fd {
		f.Flags = b[5]
		dlen = canFDMaxDLen
	}
	copy(f.Data[:dlen], b[8:8+dlen])
	return f
}

func encodeXOR(c XORChecksum) []byte {
	return []byte{byte(c.FromIdx), byte(c.ToIdx), byte(c.ResultIdx), c.InitXORVal}
}

// encodeCRC8 returns the packed struct cgw_csum_crc8:
// from, to, result, init, final_xor (1 byte each), crctab[256], profile, profile_data[20].
func encodeCRC8(c CRC8Checksum) []byte {
	b := make([]byte, csCRC8Len)
	b[0], b[1], b[2] = byte(c.FromIdx), byte(c.ToIdx), byte(c.ResultIdx)
	b[3], b[4] = c.InitCRCVal, c.FinalXORVal
	copy(b[5:261], c.Table[:])
	b[261] = byte(c.Profile)
	copy(b[262:], c.ProfileData) // validated to fit; longer input is cut
	return b
}

func decodeCRC8(b []byte) *CRC8Checksum {
	c := &CRC8Checksum{
		FromIdx: int8(b[0]), ToIdx: int8(b[1]), ResultIdx: int8(b[2]),
		InitCRCVal: b[3], FinalXORVal: b[4], Profile: CRC8Profile(b[261]),
	}
	copy(c.Table[:], b[5:261])
	pd := b[262:]
	end := len(pd)
	for end > 0 && pd[end-1] == 0 {
		end--
	}
	if end > 0 {
		c.ProfileData = append([]byte(nil), pd[:end]...)
	}
	return c
}
