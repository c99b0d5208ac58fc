package attach

import (
	"fmt"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/request"
)

// Plan is what one bus attachment needs from the kernel.
type Plan struct {
	Request request.Bus // what is asked of this host bus
	HostEnd string      // host end name
	MTU     int         // of both vxcan ends
	FD      bool        // FD frames forwarded (FD rules exist)
	// Rules with Src/Dst set to the bus index and to HostEndIndex, the
	// placeholder for the host end's index until the pair exists.
	Rules []cangw.Rule
	// Pending: the bus is optional and missing; the pair is made, the
	// rules follow when the bus appears.
	Pending bool
	// CreateBus: the bus is virtual and missing; attach makes the vcan,
	// then plans again.
	CreateBus    bool
	HostBusIndex int // the host bus's ifindex (0 while it is missing)
}

// HostEndIndex stands for the host end's ifindex in a Plan's rules.
const HostEndIndex = -1

// Flags of the container -> bus rules. Echo makes the frame visible to
// sockets on the host bus, as a local sender's frame would be. IIF_TX_OK
// defeats the ifindex-collision trap: vxcan keeps the sender's ifindex (an
// index in the container's namespace) and the gateway drops a frame whose
// incoming index equals the destination's, so without it a container whose
// interface happens to have the host bus's index could not transmit.
const txFlags = cangw.FlagEcho | cangw.FlagIIFTXOK

// MakePlan computes the vxcan MTU and the can-gw rules for one bus. bus is
// the host bus as the kernel reports it.
func MakePlan(req request.Bus, targetID string, hostBus canlink.Link) (Plan, error) {
	if !hostBus.IsCAN() {
		return Plan{}, fmt.Errorf("host bus %s is not a CAN interface (kind %q)", req.Host, kindOf(hostBus))
	}
	fd := hostBus.FD()
	switch req.FD {
	case request.FDOn:
		if !hostBus.FD() {
			return Plan{}, fmt.Errorf("host bus %s carries classic CAN only (MTU %d): fd=on needs an FD bus", req.Host, hostBus.MTU)
		}
	case request.FDOff:
		fd = false
	}
	p := Plan{Request: req, HostEnd: HostEndName(targetID, req.Host), MTU: canlink.MTUClassic, FD: fd, HostBusIndex: hostBus.Index}
	if fd {
		p.MTU = canlink.MTUFD
	}
	kinds := []cangw.Flags{0}
	if fd {
		kinds = append(kinds, cangw.FlagFD)
	}
	add := func(src, dst int, flags cangw.Flags, ids *canid.List) error {
		filters, err := compile(ids)
		if err != nil {
			return err
		}
		for _, kind := range kinds {
			for _, f := range filters {
				p.Rules = append(p.Rules, cangw.Rule{Src: src, Dst: dst, Flags: flags | kind, Filter: f})
			}
		}
		return nil
	}
	if req.Dir.Receives() {
		if err := add(hostBus.Index, HostEndIndex, 0, req.RX); err != nil {
			return Plan{}, fmt.Errorf("bus %s: rx: %w", req.Host, err)
		}
	}
	if req.Dir.Transmits() {
		if err := add(HostEndIndex, hostBus.Index, txFlags, req.TX); err != nil {
			return Plan{}, fmt.Errorf("bus %s: tx: %w", req.Host, err)
		}
		if req.Virtual {
			// Containers on a virtual bus get each other's frames by
			// direct rules (see PeerRules); a hop limit of 1 keeps the
			// echo on the vcan from reaching them a second time, whatever
			// the module's max_hops.
			for i := range p.Rules {
				if p.Rules[i].Src == HostEndIndex {
					p.Rules[i].HopLimit = 1
				}
			}
		}
	}
	return p, nil
}

// Peer is another container's host end on a virtual bus, as the kernel
// shows it: its index, FD capability and its rules' filters each way (nil
// slice: that direction is not allowed; a nil filter: every id).
type Peer struct {
	Index  int
	FD     bool
	RX, TX []*cangw.Filter
}

// PeerRules are the rules that let the planned container and a peer on the
// same virtual bus hear each other, directly (one hop): each way, the
// sender's transmit filters intersected with the receiver's receive filters.
func (p Plan) PeerRules(peer Peer) ([]cangw.Rule, error) {
	rx, err := compile(p.Request.RX)
	if err != nil {
		return nil, err
	}
	tx, err := compile(p.Request.TX)
	if err != nil {
		return nil, err
	}
	kinds := []cangw.Flags{0}
	if p.FD && peer.FD {
		kinds = append(kinds, cangw.FlagFD)
	}
	var out []cangw.Rule
	add := func(src, dst int, from, to []*cangw.Filter) {
		for _, f := range intersect(from, to) {
			for _, kind := range kinds {
				out = append(out, cangw.Rule{Src: src, Dst: dst, Flags: cangw.FlagIIFTXOK | kind, Filter: f})
			}
		}
	}
	if p.Request.Dir.Transmits() && peer.RX != nil {
		add(HostEndIndex, peer.Index, tx, peer.RX)
	}
	if p.Request.Dir.Receives() && peer.TX != nil {
		add(peer.Index, HostEndIndex, peer.TX, rx)
	}
	return out, nil
}

// intersect returns the filters matching what both lists match; each list
// is disjoint, so the result is too. A nil filter matches everything.
func intersect(a, b []*cangw.Filter) []*cangw.Filter {
	var out []*cangw.Filter
	for _, x := range a {
		for _, y := range b {
			switch {
			case x == nil:
				out = append(out, y)
			case y == nil:
				out = append(out, x)
			default:
				if f, ok := canid.Intersect(*x, *y); ok {
					out = append(out, &f)
				}
			}
		}
	}
	return out
}

// PlanPending plans an optional bus that does not exist (yet): the pair
// only, so the container sees its interface from its first instruction. Its
// MTU is FD's unless fd=off, so that whatever bus appears can be routed.
func PlanPending(req request.Bus, targetID string) Plan {
	p := Plan{Request: req, HostEnd: HostEndName(targetID, req.Host), MTU: canlink.MTUFD, FD: true, Pending: true}
	if req.FD == request.FDOff {
		p.MTU, p.FD = canlink.MTUClassic, false
	}
	return p
}

func kindOf(l canlink.Link) string {
	if l.Kind == "" {
		return "none"
	}
	return l.Kind
}

// compile turns an allow-list into filters; nil (no list) is one rule
// without a filter, which forwards every frame.
func compile(ids *canid.List) ([]*cangw.Filter, error) {
	if ids == nil {
		return []*cangw.Filter{nil}, nil
	}
	fs, err := ids.Filters()
	if err != nil {
		return nil, err
	}
	out := make([]*cangw.Filter, len(fs))
	for i := range fs {
		out[i] = &fs[i]
	}
	return out, nil
}

// Resolve replaces the HostEndIndex placeholder by the real index.
func (p Plan) Resolve(hostEnd int) []cangw.Rule {
	out := make([]cangw.Rule, len(p.Rules))
	for i, r := range p.Rules {
		if r.Src == HostEndIndex {
			r.Src = hostEnd
		}
		if r.Dst == HostEndIndex {
			r.Dst = hostEnd
		}
		out[i] = r
	}
	return out
}
