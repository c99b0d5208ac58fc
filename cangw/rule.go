package cangw

import (
	"bytes"
	"fmt"
	"math"
)

// Rule is one CAN-to-CAN gateway job: frames received on Src that pass
// Filter are (modified and) sent on Dst.
type Rule struct {
	// Src and Dst are interface indexes in the Conn's network namespace;
	// both are required by Add and Delete.
	Src, Dst int
	Flags    Flags
	// Filter selects the forwarded frames; nil forwards every frame. A
	// filter with ID 0 and Mask 0 is the same as nil (List returns nil).
	Filter *Filter
	// HopLimit is CGW_LIM_HOPS: 0 means no limit attribute, else 1 up to
	// the can-gw module parameter max_hops (default 1, at most 6).
	HopLimit uint8
	// UID is CGW_MOD_UID, 0 means none. The kernel keeps a UID only when
	// the rule has a modification, and identifies the rule by it: Add with
	// a UID already in use replaces that rule's modifications and checksums
	// (interfaces and filter must be the same) instead of adding a rule, and
	// Delete matches on the UID alone.
	UID uint32
	// Mods are classic modifications, or CAN FD ones when Flags has
	// FlagFD. At most one per ModOp.
	Mods []Modification
	// XOR and CRC8 are checksums computed after the modifications; the
	// kernel uses them only on rules with modifications.
	XOR  *XORChecksum
	CRC8 *CRC8Checksum

	// Counters, filled by List, ignored by Add and Delete. Handled counts
	// frames sent on Dst, Dropped frames lost (Dst down, out of memory,
	// send error), Deleted frames discarded by the hop limit or because a
	// modification produced an invalid length.
	Handled, Dropped, Deleted uint32
}

// Validate checks the rule the way Add and Delete do before sending it, so
// that mistakes the kernel would reject with a bare EINVAL, or silently
// ignore, are reported with the field that is wrong.
func (r Rule) Validate() error {
	if r.Src <= 0 || r.Src > math.MaxInt32 {
		return fmt.Errorf("cangw: rule: Src interface index must be > 0 (got %d)", r.Src)
	}
	if r.Dst <= 0 || r.Dst > math.MaxInt32 {
		return fmt.Errorf("cangw: rule: Dst interface index must be > 0 (got %d)", r.Dst)
	}
	return r.validateBody()
}

// validateBody checks everything but the interface indexes.
func (r Rule) validateBody() error {
	if bad := r.Flags &^ knownFlags; bad != 0 {
		return fmt.Errorf("cangw: rule: Flags has unknown bits 0x%x", uint16(bad))
	}
	if r.Src == r.Dst && r.Flags&FlagIIFTXOK == 0 {
		return fmt.Errorf("cangw: rule: Src == Dst (%d) needs FlagIIFTXOK (the kernel rejects it otherwise)", r.Src)
	}
	if r.Filter != nil {
		if err := r.Filter.validate(); err != nil {
			return err
		}
	}
	if r.HopLimit > maxHops {
		return fmt.Errorf("cangw: rule: HopLimit %d out of range 1..%d (0 = none; the kernel also caps it at the module's max_hops, default 1)", r.HopLimit, maxHops)
	}
	fd := r.Flags&FlagFD != 0
	var seen [ModSET + 1]int
	for i, m := range r.Mods {
		if err := m.validate(i, fd); err != nil {
			return err
		}
		if j := seen[m.Op]; j != 0 {
			return fmt.Errorf("cangw: rule: Mods[%d] is a second %s modification (first is Mods[%d]): the kernel takes one per operation; put all its Targets into one Modification", i, m.Op, j-1)
		}
		seen[m.Op] = i + 1
	}
	if len(r.Mods) == 0 {
		// gw.c reads CGW_MOD_UID and the checksums only when a modification
		// is present, and accepts the rule without them: say so instead.
		switch {
		case r.UID != 0:
			return fmt.Errorf("cangw: rule: UID %#x given without any modification: the kernel would accept the rule and silently drop the UID (add a no-op modification such as AND on ModID with ID 0xffffffff to keep it)", r.UID)
		case r.XOR != nil:
			return fmt.Errorf("cangw: rule: XOR checksum given without any modification: the kernel would silently ignore it")
		case r.CRC8 != nil:
			return fmt.Errorf("cangw: rule: CRC8 checksum given without any modification: the kernel would silently ignore it")
		}
	}
	if r.XOR != nil {
		if err := r.XOR.validate(fd); err != nil {
			return err
		}
	}
	if r.CRC8 != nil {
		if err := r.CRC8.validate(fd); err != nil {
			return err
		}
	}
	return nil
}

// hasMods reports whether the kernel would install a modification function
// for this rule (gw.c's modidx > 0), which is what makes it keep the UID and
// the checksums.
func (r Rule) hasMods() bool {
	mask := ModID | ModLen | ModData
	if r.Flags&FlagFD != 0 {
		mask |= ModFlags
	}
	for _, m := range r.Mods {
		if m.Op.valid() && m.Targets&mask != 0 {
			return true
		}
	}
	return false
}

// modState is the kernel's struct cf_mod without function pointers: one
// operand and modtype per operation, the checksums and the uid.
type modState struct {
	present [ModSET + 1]bool
	targets [ModSET + 1]ModTarget
	frames  [ModSET + 1]Frame
	xor     []byte
	crc8    []byte
	uid     uint32
}

func (r Rule) modState() modState {
	var s modState
	fd := r.Flags&FlagFD != 0
	for _, m := range r.Mods {
		if !m.Op.valid() {
			continue
		}
		// Later attributes of the same type win, as in nla_parse.
		s.present[m.Op] = true
		s.targets[m.Op] = m.Targets
		s.frames[m.Op] = m.Frame.normalized(fd)
	}
	if r.hasMods() {
		s.uid = r.UID
		if r.XOR != nil {
			s.xor = encodeXOR(*r.XOR)
		}
		if r.CRC8 != nil {
			s.crc8 = encodeCRC8(*r.CRC8)
		}
	}
	return s
}

// Equal reports whether Delete(o) would remove r, i.e. whether the kernel's
// exact match in cgw_remove_job considers them the same rule: same Flags,
// HopLimit, Src, Dst and Filter (nil equals ID 0, Mask 0), and the same UID
// if either has one, else the same modifications and checksums. Counters
// are ignored.
func (r Rule) Equal(o Rule) bool {
	if r.Flags != o.Flags || r.HopLimit != o.HopLimit || r.Src != o.Src || r.Dst != o.Dst ||
		filterWire(r.Filter) != filterWire(o.Filter) {
		return false
	}
	a, b := r.modState(), o.modState()
	if a.uid != 0 || b.uid != 0 {
		return a.uid == b.uid
	}
	return a.present == b.present && a.targets == b.targets && a.frames == b.frames &&
		bytes.Equal(a.xor, b.xor) && bytes.Equal(a.crc8, b.crc8)
}
