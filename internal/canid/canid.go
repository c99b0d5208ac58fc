// Package canid parses CAN identifier lists ("100-10F,7DF,18DAF110") and
// compiles them into the smallest set of disjoint kernel filters (id/mask
// pairs) that match exactly the listed identifiers.
//
// Notation follows can-utils (cansend, candump): identifiers are hexadecimal,
// an optional 0x prefix is allowed; one to three digits name a standard
// 11-bit id (000-7FF), exactly eight digits an extended 29-bit id
// (00000000-1FFFFFFF). An item is an id, a range LO-HI (both of the same
// width) or ID/MASK (the frame matches when frame_id & MASK == ID & MASK).
package canid

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"

	"github.com/kanto-can/kanto-can/cangw"
)

// Kernel flag bits of a can_id (include/uapi/linux/can.h).
const (
	EFFFlag = 0x80000000 // extended frame format
	RTRFlag = 0x40000000 // remote transmission request
	SFFMask = 0x000007FF
	EFFMask = 0x1FFFFFFF
)

// Item is one entry of an id list: the ids v with v&Mask == ID&Mask, of one
// width. A range is stored as Lo..Hi with Mask 0.
type Item struct {
	Extended bool
	Lo, Hi   uint32 // inclusive range, when Mask == 0
	ID, Mask uint32 // id/mask form, when Mask != 0 and not a prefix
}

func (it Item) String() string {
	f := fmtID(it.Extended)
	if it.Mask != 0 {
		return f(it.ID) + "/" + f(it.Mask)
	}
	if it.Lo == it.Hi {
		return f(it.Lo)
	}
	return f(it.Lo) + "-" + f(it.Hi)
}

func fmtID(ext bool) func(uint32) string {
	if ext {
		return func(v uint32) string { return fmt.Sprintf("%08X", v) }
	}
	return func(v uint32) string { return fmt.Sprintf("%03X", v) }
}

// List is an allow-list of CAN ids. The zero List allows nothing; callers use
// a nil *List (or their own flag) for "no filter".
type List struct {
	Items []Item
}

func (l List) String() string {
	s := make([]string, len(l.Items))
	for i, it := range l.Items {
		s[i] = it.String()
	}
	return strings.Join(s, ",")
}

// ParseID parses one identifier in can-utils notation and reports whether
// it is extended (eight digits).
func ParseID(s string) (id uint32, extended bool, err error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if h == "" {
		return 0, false, fmt.Errorf("empty id %q", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, false, fmt.Errorf("%q is not a hexadecimal CAN id", s)
	}
	switch {
	case len(h) <= 3:
		if v > SFFMask {
			return 0, false, fmt.Errorf("%s is beyond the 11-bit range 000-7FF (write an extended id with 8 hex digits, e.g. %08X)", s, v)
		}
		return uint32(v), false, nil
	case len(h) == 8:
		if v > EFFMask {
			return 0, false, fmt.Errorf("%s is beyond the 29-bit range 00000000-1FFFFFFF", s)
		}
		return uint32(v), true, nil
	default:
		return 0, false, fmt.Errorf("%q has %d hex digits: use 1-3 for a standard id, exactly 8 for an extended id", s, len(h))
	}
}

// ParseItem parses "ID", "LO-HI" or "ID/MASK".
func ParseItem(s string) (Item, error) {
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, ea, err := ParseID(lo)
		if err != nil {
			return Item{}, err
		}
		b, eb, err := ParseID(hi)
		if err != nil {
			return Item{}, err
		}
		if ea != eb {
			return Item{}, fmt.Errorf("range %s mixes a standard and an extended id", s)
		}
		if a > b {
			return Item{}, fmt.Errorf("range %s is empty (low end above high end)", s)
		}
		return Item{Extended: ea, Lo: a, Hi: b}, nil
	}
	if id, mask, ok := strings.Cut(s, "/"); ok {
		a, ea, err := ParseID(id)
		if err != nil {
			return Item{}, err
		}
		m, em, err := ParseID(mask)
		if err != nil {
			return Item{}, fmt.Errorf("mask: %v", err)
		}
		if ea != em {
			return Item{}, fmt.Errorf("%s: id and mask must have the same width (3 or 8 hex digits)", s)
		}
		return fromMask(a, m, ea), nil
	}
	a, e, err := ParseID(s)
	if err != nil {
		return Item{}, err
	}
	return Item{Extended: e, Lo: a, Hi: a}, nil
}

// fromMask turns id/mask into a range when the mask is a prefix (its set
// bits are the top bits of the id space), so that it merges with ranges.
func fromMask(id, mask uint32, ext bool) Item {
	full := uint32(SFFMask)
	if ext {
		full = EFFMask
	}
	mask &= full
	host := ^mask & full    // bits the mask leaves free
	if host&(host+1) == 0 { // host bits are contiguous low bits: a prefix
		lo := id & mask
		return Item{Extended: ext, Lo: lo, Hi: lo | host}
	}
	return Item{Extended: ext, ID: id & mask, Mask: mask}
}

// ParseList parses comma-separated items.
func ParseList(s string) (List, error) {
	var l List
	for _, p := range strings.Split(s, ",") {
		it, err := ParseItem(strings.TrimSpace(p))
		if err != nil {
			return List{}, err
		}
		l.Items = append(l.Items, it)
	}
	return l, nil
}

// Filter is a kernel filter (struct can_filter): a frame matches when
// frame.can_id & Mask == ID & Mask. ID and Mask carry the EFF/RTR flags.
// It is can-gw's filter type, which the CAN_RAW filters of bridge mode take
// field by field: one type from the list to the kernel.
type Filter = cangw.Filter

// exact reports whether the filter names one id, which the kernel looks up
// in O(1) instead of walking a list per frame.
func exact(f Filter) bool {
	if f.ID&EFFFlag != 0 {
		return f.Mask == EFFMask|EFFFlag|RTRFlag
	}
	return f.Mask == SFFMask|EFFFlag|RTRFlag
}

// Overlap reports whether some frame matches both a and b (neither
// inverted).
func Overlap(a, b Filter) bool { return (a.ID^b.ID)&a.Mask&b.Mask == 0 }

// Intersect returns the filter that matches what both a and b match, and
// false when nothing does.
func Intersect(a, b Filter) (Filter, bool) {
	if !Overlap(a, b) {
		return Filter{}, false
	}
	return Filter{ID: a.ID&a.Mask | b.ID&b.Mask, Mask: a.Mask | b.Mask}, true
}

// Overlaps reports whether some id is in both items.
func (it Item) Overlaps(other Item) bool {
	if it.Extended != other.Extended {
		return false
	}
	fa, _ := List{Items: []Item{it}}.Filters()
	fb, _ := List{Items: []Item{other}}.Filters()
	for _, x := range fa {
		for _, y := range fb {
			if Overlap(x, y) {
				return true
			}
		}
	}
	return false
}

// Filters compiles the list into disjoint kernel filters, so that no frame
// matches two of them (each filter becomes one can-gw rule, and the gateway
// has no duplicate check: overlapping rules would forward a frame twice).
//
// Ranges are merged, then split into aligned power-of-two blocks (one
// id/mask each). Every filter selects data frames of its width only: the
// mask includes the EFF and RTR bits, which also puts single ids on the
// kernel's O(1) lookup path. Remote (RTR) frames pass only an unfiltered
// direction. Non-prefix masks are kept as they are and must not overlap
// anything else in the list.
func (l List) Filters() ([]Filter, error) {
	var out []Filter
	for _, ext := range []bool{false, true} {
		var ranges []Item
		var masks []Item
		for _, it := range l.Items {
			if it.Extended != ext {
				continue
			}
			if it.Mask != 0 {
				masks = append(masks, it)
			} else {
				ranges = append(ranges, it)
			}
		}
		merged := mergeRanges(ranges)
		var blocks []Filter
		for _, r := range merged {
			blocks = append(blocks, rangeBlocks(r.Lo, r.Hi, ext)...)
		}
		for i, m := range masks {
			f := maskFilter(m.ID, m.Mask, ext)
			for j := 0; j < i; j++ {
				if Overlap(f, maskFilter(masks[j].ID, masks[j].Mask, ext)) {
					return nil, fmt.Errorf("%s overlaps %s: a frame would be forwarded twice", m, masks[j])
				}
			}
			for _, r := range merged {
				for _, b := range rangeBlocks(r.Lo, r.Hi, ext) {
					if Overlap(f, b) {
						return nil, fmt.Errorf("%s overlaps %s: a frame would be forwarded twice", m, r)
					}
				}
			}
			out = append(out, f)
		}
		out = append(out, blocks...)
	}
	return out, nil
}

func maskFilter(id, mask uint32, ext bool) Filter {
	if ext {
		return Filter{ID: id&mask | EFFFlag, Mask: mask | EFFFlag | RTRFlag}
	}
	return Filter{ID: id & mask, Mask: mask | EFFFlag | RTRFlag}
}

func mergeRanges(in []Item) []Item {
	if len(in) == 0 {
		return nil
	}
	s := append([]Item(nil), in...)
	sort.Slice(s, func(i, j int) bool { return s[i].Lo < s[j].Lo })
	out := []Item{s[0]}
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if r.Lo <= last.Hi+1 { // overlapping or adjacent
			if r.Hi > last.Hi {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// rangeBlocks splits lo..hi into the fewest aligned power-of-two blocks,
// like an address range into CIDR prefixes.
func rangeBlocks(lo, hi uint32, ext bool) []Filter {
	full := uint32(SFFMask)
	if ext {
		full = EFFMask
	}
	var out []Filter
	for lo64, hi64 := uint64(lo), uint64(hi); lo64 <= hi64; {
		size := uint64(1)
		if lo64 != 0 {
			size = uint64(1) << bits.TrailingZeros64(lo64)
		} else {
			size = uint64(full) + 1
		}
		for lo64+size-1 > hi64 {
			size >>= 1
		}
		out = append(out, maskFilter(uint32(lo64), full&^uint32(size-1), ext))
		lo64 += size
	}
	return out
}

// Matches reports whether the list allows a data frame with this id.
func (l List) Matches(id uint32, extended bool) bool {
	for _, it := range l.Items {
		if it.Extended != extended {
			continue
		}
		if it.Mask != 0 {
			if id&it.Mask == it.ID&it.Mask {
				return true
			}
		} else if id >= it.Lo && id <= it.Hi {
			return true
		}
	}
	return false
}

// FilterString shows a kernel filter in list notation when it is one of
// ours (an id, a block of ids, an id/mask of one width) and as raw
// can-utils "ID:MASK" (or "ID~MASK" when inverted) otherwise.
func FilterString(f Filter) string {
	inverted := f.Inverted
	ext := f.ID&EFFFlag != 0
	full := uint32(SFFMask)
	if ext {
		full = EFFMask
	}
	ours := f.Mask&(EFFFlag|RTRFlag) == EFFFlag|RTRFlag && f.Mask&^(EFFFlag|RTRFlag|full) == 0 &&
		f.ID&RTRFlag == 0 && !inverted
	if !ours {
		sep := ":"
		if inverted {
			sep = "~"
		}
		return fmt.Sprintf("%08X%s%08X", f.ID, sep, f.Mask)
	}
	return fromMask(f.ID&full, f.Mask&full, ext).String()
}

// Uncovered returns the part of req that l does not allow: the ids (as
// ranges) and id/masks of req outside l. Empty means l covers req.
func (l List) Uncovered(req List) List {
	var out List
	for _, ext := range []bool{false, true} {
		var have []Item
		for _, it := range l.Items {
			if it.Extended == ext && it.Mask == 0 {
				have = append(have, it)
			}
		}
		have = mergeRanges(have)
		for _, it := range req.Items {
			if it.Extended != ext {
				continue
			}
			if it.Mask != 0 {
				if !l.coversMask(it) {
					out.Items = append(out.Items, it)
				}
				continue
			}
			out.Items = append(out.Items, subtract(it, have)...)
		}
	}
	return out
}

// subtract removes the sorted, disjoint ranges have from r.
func subtract(r Item, have []Item) []Item {
	var out []Item
	lo := uint64(r.Lo)
	for _, h := range have {
		if uint64(h.Hi) < lo || h.Lo > r.Hi {
			continue
		}
		if uint64(h.Lo) > lo {
			out = append(out, Item{Extended: r.Extended, Lo: uint32(lo), Hi: h.Lo - 1})
		}
		lo = uint64(h.Hi) + 1
	}
	if lo <= uint64(r.Hi) {
		out = append(out, Item{Extended: r.Extended, Lo: uint32(lo), Hi: r.Hi})
	}
	return out
}

// coversMask reports whether every id of a (non-prefix) id/mask item is
// allowed: the same id/mask is listed, or, for standard ids, each of them is.
func (l List) coversMask(m Item) bool {
	for _, it := range l.Items {
		if it == m {
			return true
		}
	}
	if m.Extended {
		return false // 2^29 ids: only an identical id/mask counts
	}
	for id := uint32(0); id <= SFFMask; id++ {
		if id&m.Mask == m.ID&m.Mask && !l.Matches(id, false) {
			return false
		}
	}
	return true
}
