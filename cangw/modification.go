package cangw

import (
	"fmt"
	"strings"
)

// ModOp is the operation of a Modification. The kernel applies them in the
// order AND, OR, XOR, SET, at most one of each per rule.
type ModOp uint8

// The values match the attribute types CGW_MOD_AND..CGW_MOD_SET, so the zero
// ModOp is invalid and an unset Op is caught.
const (
	ModAND ModOp = 1 // frame field &= operand
	ModOR  ModOp = 2 // frame field |= operand
	ModXOR ModOp = 3 // frame field ^= operand
	ModSET ModOp = 4 // frame field = operand
)

func (o ModOp) String() string {
	switch o {
	case ModAND:
		return "AND"
	case ModOR:
		return "OR"
	case ModXOR:
		return "XOR"
	case ModSET:
		return "SET"
	}
	return fmt.Sprintf("ModOp(%d)", uint8(o))
}

func (o ModOp) valid() bool { return o >= ModAND && o <= ModSET }

// attr returns the netlink attribute type carrying this operation.
func (o ModOp) attr(fd bool) uint16 {
	if fd {
		return uint16(cgwFDModAND) + uint16(o-ModAND)
	}
	return uint16(o)
}

// ModTarget is the set of frame fields a Modification changes (the
// modtype byte, CGW_MOD_*).
type ModTarget uint8

const (
	ModID    ModTarget = 0x01 // CGW_MOD_ID: the CAN identifier (with its flag bits)
	ModLen   ModTarget = 0x02 // CGW_MOD_LEN / CGW_MOD_DLC: the length (DLC for classic frames)
	ModData  ModTarget = 0x04 // CGW_MOD_DATA: all data bytes (8 classic, 64 FD)
	ModFlags ModTarget = 0x08 // CGW_MOD_FLAGS: CAN FD flags (BRS, ESI); FD rules only

	knownTargets = ModID | ModLen | ModData | ModFlags
)

// String returns the targets the way cangw writes them ("I", "F", "L",
// "D"), e.g. "ILD"; unknown bits in hex.
func (t ModTarget) String() string {
	var b strings.Builder
	for _, x := range []struct {
		t ModTarget
		c byte
	}{{ModID, 'I'}, {ModFlags, 'F'}, {ModLen, 'L'}, {ModData, 'D'}} {
		if t&x.t != 0 {
			b.WriteByte(x.c)
		}
	}
	if rest := t &^ knownTargets; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(&b, "0x%x", uint8(rest))
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}

// Frame is the operand of a Modification. On a classic rule it is sent as
// struct can_frame (only ID, Len and Data[:8] are used; Flags and Data[8:]
// must be zero), on a CAN FD rule as struct canfd_frame.
type Frame struct {
	ID    uint32   // can_id, including CAN_EFF_FLAG/CAN_RTR_FLAG/CAN_ERR_FLAG bits
	Len   uint8    // len (classic: the DLC; 9..15 are raw DLC values)
	Flags uint8    // CAN FD flags (CANFD_BRS 0x01, CANFD_ESI 0x02)
	Data  [64]byte // data; a classic frame uses the first 8 bytes
}

// Modification changes forwarded frames: Op is applied with Frame as
// operand to the fields in Targets. Whether it is a classic or a CAN FD
// modification follows from the rule's FlagFD.
type Modification struct {
	Op      ModOp
	Targets ModTarget
	Frame   Frame
}

// normalized returns the operand as the kernel stores it: the kernel copies
// only id, len and data[0:8] of a classic frame (canframecpy).
func (f Frame) normalized(fd bool) Frame {
	if fd {
		return f
	}
	n := Frame{ID: f.ID, Len: f.Len}
	copy(n.Data[:canMaxDLen], f.Data[:canMaxDLen])
	return n
}

func (m Modification) validate(i int, fd bool) error {
	if !m.Op.valid() {
		return fmt.Errorf("cangw: rule: Mods[%d].Op %d is not ModAND, ModOR, ModXOR or ModSET", i, uint8(m.Op))
	}
	if m.Targets == 0 {
		return fmt.Errorf("cangw: rule: Mods[%d] (%s) has no Targets: the kernel would store it but change nothing", i, m.Op)
	}
	if bad := m.Targets &^ knownTargets; bad != 0 {
		return fmt.Errorf("cangw: rule: Mods[%d].Targets has unknown bits 0x%x", i, uint8(bad))
	}
	if fd {
		return nil
	}
	if m.Targets&ModFlags != 0 {
		return fmt.Errorf("cangw: rule: Mods[%d].Targets: ModFlags is only valid on a CAN FD rule (Flags has FlagFD)", i)
	}
	if m.Frame.Flags != 0 {
		return fmt.Errorf("cangw: rule: Mods[%d].Frame.Flags must be 0 on a classic rule (struct can_frame has no flags; set FlagFD for CAN FD)", i)
	}
	for _, b := range m.Frame.Data[canMaxDLen:] {
		if b != 0 {
			return fmt.Errorf("cangw: rule: Mods[%d].Frame.Data[8:] must be zero on a classic rule (8 data bytes; set FlagFD for CAN FD)", i)
		}
	}
	return nil
}
