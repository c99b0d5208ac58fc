package attach

import (
	"errors"
	"sort"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/ratelimit"
	"github.com/kanto-can/kanto-can/vxcan"
)

// Attachment is one (target, bus) wiring as the kernel shows it.
type Attachment struct {
	Target       string      `json:"target"`              // Target.ID
	Label        string      `json:"label"`               // how the user named it
	Container    string      `json:"container,omitempty"` // container id, when known
	Bus          string      `json:"bus"`
	BusIndex     int         `json:"bus_index"` // 0 when the bus is gone
	Inside       string      `json:"inside"`
	HostEnd      string      `json:"host_end"`
	HostEndIndex int         `json:"host_end_index"`
	FD           bool        `json:"fd"`
	Rules        []RuleState `json:"rules"`
	// TxRate is the transmit rate limit, with the frames it let through
	// and dropped; nil without a limit.
	TxRate *RateState `json:"tx_rate,omitempty"`
}

// RateState is a transmit rate limit and its counters.
type RateState struct {
	FramesPerSecond uint64 `json:"frames_per_second"`
	Burst           uint64 `json:"burst"`
	Passed          uint64 `json:"passed"`
	Dropped         uint64 `json:"dropped"`
}

// RuleState is one of an attachment's can-gw rules with its counters.
type RuleState struct {
	Direction string `json:"direction"` // "rx" (bus -> container) or "tx"
	FD        bool   `json:"fd"`        // forwards CAN FD frames (else classic)
	Filter    string `json:"filter"`    // ids in can-utils notation, "all" without filter
	Handled   uint32 `json:"handled"`
	Dropped   uint32 `json:"dropped"`
	Deleted   uint32 `json:"deleted"`
}

// Direction is the attachment's direction derived from its rules.
func (a Attachment) Direction() string {
	rx, tx := false, false
	for _, r := range a.Rules {
		rx = rx || r.Direction == "rx"
		tx = tx || r.Direction == "tx"
	}
	switch {
	case rx && tx:
		return "both"
	case rx:
		return "rx"
	case tx:
		return "tx"
	}
	return "none"
}

// List returns every attachment of ours in the host's namespace, sorted
// by target and bus.
func (h *Host) List() ([]Attachment, error) {
	ends, err := h.Links.Pairs()
	if err != nil {
		return nil, err
	}
	rules, err := h.GW.List()
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, end := range ends {
		meta, ok := ParseAlias(end.Alias)
		if !ok {
			continue
		}
		a := Attachment{
			Target: meta.Target, Label: meta.Label, Container: meta.Container, Bus: meta.Bus, Inside: meta.Inside,
			HostEnd: end.Name, HostEndIndex: end.Index, FD: end.MTU == vxcan.MTUFD,
		}
		if bus, err := h.Links.LinkByName(meta.Bus); err == nil {
			a.BusIndex = bus.Index
		} else if !errors.Is(err, vxcan.ErrNotFound) {
			return nil, err
		}
		for _, r := range rules {
			dir := ""
			switch {
			case r.Dst == end.Index:
				dir = "rx"
			case r.Src == end.Index:
				dir = "tx"
			default:
				continue
			}
			a.Rules = append(a.Rules, RuleState{
				Direction: dir, FD: r.Flags&cangw.FlagFD != 0, Filter: FilterString(r.Filter),
				Handled: r.Handled, Dropped: r.Dropped, Deleted: r.Deleted,
			})
		}
		if err := h.listRate(&a); err != nil {
			return nil, err
		}
		sort.SliceStable(a.Rules, func(i, j int) bool {
			x, y := a.Rules[i], a.Rules[j]
			if x.Direction != y.Direction {
				return x.Direction == "rx"
			}
			return !x.FD && y.FD
		})
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Label != out[j].Label {
			return out[i].Label < out[j].Label
		}
		return out[i].Bus < out[j].Bus
	})
	return out, nil
}

// FilterString shows a can-gw filter the way a user wrote it: an id, a
// range or id/mask in can-utils notation; "all" for no filter.
func FilterString(f *cangw.Filter) string {
	if f == nil {
		return "all"
	}
	return canid.FilterString(canid.Filter{ID: f.ID, Mask: f.Mask}, f.Inverted)
}

func (h *Host) listRate(a *Attachment) error {
	tc, err := h.tcConn()
	if err != nil {
		return err
	}
	l, has, err := ratelimit.Get(tc, a.HostEndIndex)
	if err != nil || !has {
		return err
	}
	passed, dropped, err := ratelimit.Stats(tc, a.HostEndIndex)
	if err != nil {
		return err
	}
	a.TxRate = &RateState{FramesPerSecond: l.FramesPerSecond, Burst: l.Burst, Passed: passed, Dropped: dropped}
	return nil
}
