package sample

import (
	"cmp"
	"slices"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
)

// View is what happened between two samples: per bus and per attachment,
// rates over the interval and totals at its end.
type View struct {
	Time     time.Time `json:"time"`
	Interval float64   `json:"interval_seconds"`
	Buses    []Bus     `json:"buses"`
	// Attachments are sorted as Sort leaves them (by bus, then who).
	Attachments []Attachment `json:"attachments"`
}

// Bus is a host bus over the interval: what status shows of it
// (attach.HostBusStatus, the same JSON names), with rates.
type Bus struct {
	Name        string `json:"bus"`
	Index       int    `json:"bus_index"`      // 0 when the bus is gone
	Kind        string `json:"kind,omitempty"` // "" when the bus is gone
	Up          bool   `json:"up"`
	Gone        bool   `json:"gone,omitempty"`
	State       string `json:"state,omitempty"` // a CAN controller's error state
	Bitrate     uint32 `json:"bitrate,omitempty"`
	DataBitrate uint32 `json:"data_bitrate,omitempty"`
	FD          bool   `json:"fd"`
	MTU         int    `json:"mtu"`
	// Frames per second the interface received from and sent to the bus.
	RxPerSecond float64 `json:"rx_frames_per_second"`
	TxPerSecond float64 `json:"tx_frames_per_second"`
	// Load is the share of the bus's capacity in use, in percent (see
	// Load); nil for a bus without a bitrate (vcan, or none set).
	Load        *float64            `json:"load_percent,omitempty"`
	Counters    *attach.BusCounters `json:"counters,omitempty"`
	Errors      *attach.BusErrors   `json:"errors,omitempty"`
	Attachments int                 `json:"attachments"`
	Bridged     int                 `json:"bridged,omitempty"` // of them bridged by the daemon (bridge mode)
	Who         []string            `json:"who"`
}

// Attachment is one attachment over the interval, named as ls names it
// (attach.Attachment). Rx is bus to container, Tx container to bus.
type Attachment struct {
	Target       string `json:"target"`              // attach.Attachment.Target
	Label        string `json:"label"`               // how it was attached
	Container    string `json:"container,omitempty"` // the container's id, when known
	Name         string `json:"name,omitempty"`      // its Kanto name, when known
	Who          string `json:"who"`                 // attach.Attachment.Who
	HostBus      string `json:"bus"`
	Inside       string `json:"inside"`
	HostEnd      string `json:"host_end"`
	HostEndIndex int    `json:"host_end_index"`
	Direction    string `json:"dir"`
	// Gone: the attachment was in the first sample and not in the second
	// (its container stopped, or it was detached); its rates are 0 and its
	// totals the last seen.
	Gone        bool    `json:"gone,omitempty"`
	RxPerSecond float64 `json:"rx_frames_per_second"`
	TxPerSecond float64 `json:"tx_frames_per_second"`
	// Dropped: frames the gateway could not deliver (either way), as
	// ls's rules[].dropped summed.
	DroppedPerSecond float64 `json:"dropped_per_second"`
	// Totals since attach (since the rules were last made: a restore by
	// the daemon starts them again).
	RxFrames uint64 `json:"rx_frames"`
	TxFrames uint64 `json:"tx_frames"`
	Dropped  uint64 `json:"dropped"`
	// TxRate is the transmit rate limit and its counters; nil without.
	TxRate *TxRate `json:"tx_rate,omitempty"`

	key attachmentKey
}

// TxRate is ls's tx_rate (the limit, the frames it passed and dropped
// since attach) with its drops per second over the interval.
type TxRate struct {
	attach.RateState
	DroppedPerSecond float64 `json:"dropped_per_second"`
}

// Rate is Rx + Tx per second: what "sort by rate" sorts by.
func (a Attachment) Rate() float64 { return a.RxPerSecond + a.TxPerSecond }

// Between computes the view from prev to cur. Attachments in prev and
// not in cur are kept, marked Gone.
func Between(prev, cur Sample) View {
	dt := cur.Time.Sub(prev.Time).Seconds()
	v := View{Time: cur.Time, Interval: dt, Buses: []Bus{}, Attachments: []Attachment{}}
	prevBus := map[string]attach.HostBusStatus{}
	for _, b := range prev.Buses {
		prevBus[b.Name] = b
	}
	for _, b := range cur.Buses {
		v.Buses = append(v.Buses, busBetween(prevBus[b.Name], b, dt))
	}
	seen := map[attachmentKey]bool{}
	prevAtt := map[attachmentKey]attach.Attachment{}
	for _, a := range prev.Attachments {
		prevAtt[keyOf(a)] = a
	}
	for _, a := range cur.Attachments {
		k := keyOf(a)
		seen[k] = true
		p, ok := prevAtt[k]
		if !ok {
			// Attached during the interval: its counters started at 0.
			p = attach.Attachment{}
		}
		v.Attachments = append(v.Attachments, attachmentBetween(p, a, dt))
	}
	for _, a := range prev.Attachments {
		if !seen[keyOf(a)] {
			g := attachmentBetween(a, a, dt)
			g.Gone = true
			v.Attachments = append(v.Attachments, g)
		}
	}
	Sort(v.Attachments, ByBus)
	return v
}

// attachmentKey tells attachments apart across samples: a host end
// deleted and made again (a new ifindex) is a new attachment.
type attachmentKey struct {
	hostEnd string
	index   int
}

func keyOf(a attach.Attachment) attachmentKey { return attachmentKey{a.HostEnd, a.HostEndIndex} }

func busBetween(prev, cur attach.HostBusStatus, dt float64) Bus {
	b := Bus{
		Name: cur.Name, Index: cur.Index, Kind: cur.Kind, Up: cur.Up, Gone: cur.Index == 0, State: cur.State,
		Bitrate: cur.Bitrate, DataBitrate: cur.DataBitrate, FD: cur.FD, MTU: cur.MTU,
		Counters: cur.Counters, Errors: cur.Errors, Attachments: cur.Attachments, Bridged: cur.Bridged, Who: cur.Who,
	}
	// Counters of another interface (the bus was re-created) are not a
	// delta: rates start at the next sample.
	if cur.Counters == nil || prev.Counters == nil || prev.Index != cur.Index || dt <= 0 {
		return b
	}
	c, p := cur.Counters, prev.Counters
	rx, tx := delta64(p.RxFrames, c.RxFrames), delta64(p.TxFrames, c.TxFrames)
	b.RxPerSecond, b.TxPerSecond = float64(rx)/dt, float64(tx)/dt
	if cur.Kind == "can" && cur.Bitrate > 0 {
		load := Load(rx+tx, delta64(p.RxBytes, c.RxBytes)+delta64(p.TxBytes, c.TxBytes), cur.Bitrate, dt)
		b.Load = &load
	}
	return b
}

func attachmentBetween(prev, cur attach.Attachment, dt float64) Attachment {
	a := Attachment{
		Target: cur.Target, Label: cur.Label, Container: cur.Container, Name: cur.Name, Who: cur.Who(), HostBus: cur.HostBus,
		Inside: cur.Inside, HostEnd: cur.HostEnd, HostEndIndex: cur.HostEndIndex, Direction: cur.Direction(), key: keyOf(cur),
	}
	prevRules := map[ruleKey]attach.RuleState{}
	for _, r := range prev.Rules {
		prevRules[ruleKey{r.Direction, r.FD}] = r
	}
	var rx, tx, drops uint64 // over the interval
	for _, r := range cur.Rules {
		p := prevRules[ruleKey{r.Direction, r.FD}]
		handled := delta32(p.Handled, r.Handled)
		switch r.Direction {
		case "rx":
			a.RxFrames += uint64(r.Handled)
			rx += handled
		case "tx":
			a.TxFrames += uint64(r.Handled)
			tx += handled
		}
		a.Dropped += uint64(r.Dropped)
		drops += delta32(p.Dropped, r.Dropped)
	}
	var limitDrops uint64
	if cur.TxRate != nil {
		a.TxRate = &TxRate{RateState: *cur.TxRate}
		if prev.TxRate != nil {
			limitDrops = delta64(prev.TxRate.Dropped, cur.TxRate.Dropped)
		} else {
			limitDrops = cur.TxRate.Dropped
		}
	}
	if dt > 0 {
		a.RxPerSecond, a.TxPerSecond = float64(rx)/dt, float64(tx)/dt
		a.DroppedPerSecond = float64(drops) / dt
		if a.TxRate != nil {
			a.TxRate.DroppedPerSecond = float64(limitDrops) / dt
		}
	}
	return a
}

// ruleKey tells an attachment's rules apart: one per direction and frame
// kind.
type ruleKey struct {
	direction string
	fd        bool
}

// delta64 is how much a 64-bit counter grew from prev to cur. One that
// went back was reset (its interface or police made again): it counted
// cur since.
func delta64(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// delta32 is how much a gateway rule's 32-bit counter grew. One that went
// back from the upper half of its range wrapped; else the rule was made
// again (a restore) and counted cur since.
func delta32(prev, cur uint32) uint64 {
	switch {
	case cur >= prev:
		return uint64(cur - prev)
	case prev >= 1<<31:
		return uint64(cur) + 1<<32 - uint64(prev)
	}
	return uint64(cur)
}

// Order is how Sort orders attachments.
type Order int

const (
	ByRate Order = iota // Rate, highest first
	ByName              // Who, then bus
	ByBus               // bus, then Who
)

// String is the order's name as the --sort flag takes it.
func (o Order) String() string {
	switch o {
	case ByRate:
		return "rate"
	case ByName:
		return "name"
	}
	return "bus"
}

// ParseOrder reads an order's name ("rate", "name", "bus").
func ParseOrder(s string) (Order, bool) {
	for _, o := range []Order{ByRate, ByName, ByBus} {
		if o.String() == s {
			return o, true
		}
	}
	return 0, false
}

// Sort orders attachments; gone ones last, ties by bus and who.
func Sort(list []Attachment, o Order) {
	slices.SortStableFunc(list, func(a, b Attachment) int {
		if a.Gone != b.Gone {
			if a.Gone {
				return 1
			}
			return -1
		}
		var c int
		switch o {
		case ByRate:
			c = cmp.Compare(b.Rate(), a.Rate())
		case ByName:
			c = cmp.Compare(a.Who, b.Who)
		}
		return cmp.Or(c, cmp.Compare(a.HostBus, b.HostBus), cmp.Compare(a.Who, b.Who), cmp.Compare(a.HostEnd, b.HostEnd))
	})
}
