package cangw

import "fmt"

// Filter selects the frames a rule forwards, like struct can_filter: a frame
// matches when frame.ID & Mask == ID & Mask, or, with Inverted, when it does
// not. A rule has at most one filter; several ranges need several rules.
type Filter struct {
	// ID is the CAN identifier to compare, with CAN_EFF_FLAG (0x80000000)
	// and CAN_RTR_FLAG (0x40000000) if those bits are part of the match.
	ID uint32
	// Mask selects the bits of ID that must match. Mask 0 matches every
	// frame. A mask with CAN_ERR_FLAG (0x20000000) makes the kernel match
	// error frames instead of data frames.
	Mask uint32
	// Inverted is CAN_INV_FILTER: the rule forwards frames that do not match.
	Inverted bool
}

// wire returns the struct can_filter field values.
func (f Filter) wire() (id, mask uint32) {
	id = f.ID
	if f.Inverted {
		id |= canInvFilter
	}
	return id, f.Mask
}

func filterFromWire(id, mask uint32) Filter {
	return Filter{ID: id &^ canInvFilter, Mask: mask, Inverted: id&canInvFilter != 0}
}

func (f Filter) validate() error {
	// CAN_INV_FILTER shares its bit with CAN_ERR_FLAG: an ID with that bit
	// would silently become an inverted filter on the wire.
	if bad := f.ID &^ (canEFFMask | canEFFFlag | canRTRFlag); bad != 0 {
		return fmt.Errorf("cangw: rule: Filter.ID 0x%08x has bits outside CAN_EFF_MASK|CAN_EFF_FLAG|CAN_RTR_FLAG (0x%08x; 0x20000000 is CAN_INV_FILTER: use Filter.Inverted)", f.ID, bad)
	}
	return nil
}

// filterWire returns the filter as the kernel stores it; a nil filter is
// stored as id 0, mask 0 (match all), which the kernel does not dump.
func filterWire(f *Filter) [2]uint32 {
	if f == nil {
		return [2]uint32{}
	}
	id, mask := f.wire()
	return [2]uint32{id, mask}
}
