package attach

import (
	"math/rand/v2"
	"testing"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/request"
)

// randomList is an allow-list of random ids, ranges and id/masks (some
// extended), or nil (every id) now and then; one whose id/masks overlap
// (which canid refuses) is drawn again.
func randomList(r *rand.Rand) *canid.List {
	if r.IntN(7) == 0 {
		return nil
	}
	for {
		var l canid.List
		for range 1 + r.IntN(5) {
			ext := r.IntN(8) == 0
			full := uint32(canid.SFFMask)
			if ext {
				full = canid.EFFMask
			}
			switch r.IntN(3) {
			case 0:
				id := r.Uint32() & full
				l.Items = append(l.Items, canid.Item{Extended: ext, Lo: id, Hi: id})
			case 1:
				lo := r.Uint32() & full
				hi := min(lo+r.Uint32N(0x200), full)
				l.Items = append(l.Items, canid.Item{Extended: ext, Lo: lo, Hi: hi})
			default:
				mask := r.Uint32() & full
				if mask == 0 {
					mask = 1
				}
				l.Items = append(l.Items, canid.Item{Extended: ext, ID: r.Uint32() & full & mask, Mask: mask})
			}
		}
		if _, err := l.Filters(); err == nil {
			return &l
		}
	}
}

func allows(l *canid.List, id uint32, ext bool) bool { return l == nil || l.Matches(id, ext) }

// passes counts the filters a data frame's can_id passes.
func passes(fs []*cangw.Filter, canID uint32) int {
	n := 0
	for _, f := range fs {
		if f == nil || (canID^f.ID)&f.Mask == 0 {
			n++
		}
	}
	return n
}

// ids are the whole 11-bit space, then extended ids: the ends of the
// lists' items and random ones.
func ids(r *rand.Rand, lists ...*canid.List) (std []uint32, ext []uint32) {
	for id := range uint32(canid.SFFMask + 1) {
		std = append(std, id)
	}
	for _, l := range lists {
		if l == nil {
			continue
		}
		for _, it := range l.Items {
			if it.Extended {
				ext = append(ext, it.Lo, it.Hi, it.ID, it.Hi+1, it.Lo-1)
			}
		}
	}
	for range 256 {
		ext = append(ext, r.Uint32()&canid.EFFMask)
	}
	return std, ext
}

// intersect's filters pass exactly the ids both lists allow, each at most
// once (no frame forwarded twice), checked id by id over the whole 11-bit
// space (and a sample of extended ids) for random allow-lists.
func TestIntersectBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 2048))
	for i := range 400 {
		a, b := randomList(r), randomList(r)
		fa, err := compile(a)
		if err != nil {
			t.Fatal(err)
		}
		fb, err := compile(b)
		if err != nil {
			t.Fatal(err)
		}
		got := intersect(fa, fb)
		std, ext := ids(r, a, b)
		check := func(id uint32, extended bool) {
			canID := id
			if extended {
				canID |= canid.EFFFlag
			}
			want := allows(a, id&canid.EFFMask, extended) && allows(b, id&canid.EFFMask, extended)
			n := passes(got, canID)
			if n > 1 || (n == 1) != want {
				t.Fatalf("case %d: %v ∩ %v: id %x (extended %v) passes %d filters, want %v", i, a, b, id, extended, n, want)
			}
		}
		for _, id := range std {
			check(id, false)
		}
		for _, id := range ext {
			check(id&canid.EFFMask, true)
		}
		// Remote frames pass only where neither side filters.
		if n := passes(got, 0x123|canid.RTRFlag); (n == 1) != (a == nil && b == nil) || n > 1 {
			t.Fatalf("case %d: %v ∩ %v: a remote frame passes %d filters", i, a, b, n)
		}
	}
}

// PeerRules lets exactly the ids one side sends and the other receives
// pass, each way, once per frame kind; FD rules only when both carry FD.
func TestPeerRulesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 2048))
	vbus := canlink.Link{Index: 9, Name: "vbus0", Kind: "vcan", Type: 280, MTU: 72}
	const peerIndex = 50
	for i := range 300 {
		b := request.Bus{Host: "vbus0", Inside: "can0", Dir: request.Direction(r.IntN(3)), Virtual: true, RX: randomList(r), TX: randomList(r)}
		if !b.Dir.Receives() {
			b.RX = nil
		}
		if !b.Dir.Transmits() {
			b.TX = nil
		}
		if r.IntN(4) == 0 {
			b.FD = request.FDOff
		}
		p, err := MakePlan(b, "netns:1", vbus)
		if err != nil {
			t.Fatal(err)
		}
		peerRX, peerTX := randomList(r), randomList(r)
		peer := Peer{Index: peerIndex, FD: r.IntN(2) == 0}
		// A peer that does not receive (or send) has no filters that way.
		if r.IntN(4) != 0 {
			if peer.RX, err = compile(peerRX); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(4) != 0 {
			if peer.TX, err = compile(peerTX); err != nil {
				t.Fatal(err)
			}
		}
		rules, err := p.PeerRules(peer)
		if err != nil {
			t.Fatal(err)
		}
		fd := p.FD && peer.FD
		type way struct {
			src, dst int
			fd       bool
		}
		filters := map[way][]*cangw.Filter{}
		for _, rule := range rules {
			if rule.Flags&cangw.FlagIIFTXOK == 0 {
				t.Fatalf("case %d: rule without IIF_TX_OK: %+v", i, rule)
			}
			w := way{rule.Src, rule.Dst, rule.Flags&cangw.FlagFD != 0}
			if w.fd && !fd {
				t.Fatalf("case %d: an FD rule though one side is classic", i)
			}
			filters[w] = append(filters[w], rule.Filter)
		}
		for _, c := range []struct {
			src, dst         int
			sends, receives  *canid.List
			sender, receiver bool // the sender sends, the receiver receives
		}{
			{HostEndIndex, peerIndex, b.TX, peerRX, b.Dir.Transmits(), peer.RX != nil},
			{peerIndex, HostEndIndex, peerTX, b.RX, peer.TX != nil, b.Dir.Receives()},
		} {
			for _, kindFD := range []bool{false, true} {
				got := filters[way{c.src, c.dst, kindFD}]
				for id := range uint32(canid.SFFMask + 1) {
					want := c.sender && c.receiver && (!kindFD || fd) && allows(c.sends, id, false) && allows(c.receives, id, false)
					if n := passes(got, id); n > 1 || (n == 1) != want {
						t.Fatalf("case %d (%s; peer rx %v tx %v): %d>%d fd=%v: id %03x passes %d rules, want %v",
							i, b, peerRX, peerTX, c.src, c.dst, kindFD, id, n, want)
					}
				}
			}
		}
	}
}
