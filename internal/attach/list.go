package attach

import (
	"encoding/json"
	"errors"
	"io/fs"
	"sort"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/ratelimit"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Attachment is one (target, bus) wiring as the kernel shows it.
type Attachment struct {
	Target       string      `json:"target"`              // Target.ID
	Label        string      `json:"label"`               // how the user named it
	Container    string      `json:"container,omitempty"` // container id, when known
	Name         string      `json:"name,omitempty"`      // the container's name now (Kanto's), when known
	HostBus      string      `json:"bus"`
	HostBusIndex int         `json:"bus_index"` // 0 when the bus is gone
	Inside       string      `json:"inside"`
	HostEnd      string      `json:"host_end"`
	HostEndIndex int         `json:"host_end_index"`
	FD           bool        `json:"fd"`
	Rules        []RuleState `json:"rules"`
	// TxRate is the transmit rate limit, with the frames it let through
	// and dropped; nil without a limit.
	TxRate *RateState `json:"tx_rate,omitempty"`

	// The host bus as the kernel shows it now. HostBusState, HostBusBitrate and
	// HostBusDataBitrate are those of a CAN controller (a link of kind "can"):
	// empty for virtual buses (vcan, vxcan) and for a bus that is gone; a
	// bitrate is 0 when none is set. HostBusFD: the bus carries CAN FD.
	HostBusState       string `json:"bus_state,omitempty"`
	HostBusBitrate     uint32 `json:"bus_bitrate,omitempty"`
	HostBusDataBitrate uint32 `json:"bus_data_bitrate,omitempty"`
	HostBusFD          bool   `json:"bus_fd"`

	// Mode is "gateway" (a vxcan pair and can-gw rules) or "bridge"
	// (kanto-can-daemon carries the frames; no host end, no rules).
	Mode string `json:"mode"`
	// Bridge is what a bridged attachment's record grants, which it has no
	// rules to tell: nil in gateway mode.
	Bridge *BridgeGrant `json:"-"`
}

// BridgeGrant is a bridged attachment's direction and allowed ids each
// way, in the notation of RuleState.Filter ("all": every id; none: that
// direction is not allowed).
type BridgeGrant struct {
	Dir    string
	RX, TX []string
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
	Direction string `json:"dir"`    // "rx" (bus -> container) or "tx"
	FD        bool   `json:"fd"`     // forwards CAN FD frames (else classic)
	Filter    string `json:"filter"` // ids in can-utils notation, "all" without filter
	Handled   uint32 `json:"handled"`
	Dropped   uint32 `json:"dropped"`
	Deleted   uint32 `json:"deleted"`
}

// MarshalJSON adds who and dir, which the table shows and a script
// would otherwise have to derive from label, name and rules.
func (a Attachment) MarshalJSON() ([]byte, error) {
	type plain Attachment // without this method
	if a.Rules == nil {
		a.Rules = []RuleState{} // a bus that came back has none yet: [], not null
	}
	return json.Marshal(struct {
		plain
		Who string `json:"who"`
		Dir string `json:"dir"`
	}{plain(a), a.Who(), a.Direction()})
}

// Who names the attachment's target for people: "container NAME" when
// the container has a name, else its label.
func (a Attachment) Who() string {
	if a.Name != "" {
		return "container " + a.Name
	}
	return a.Label
}

// names returns the containers' names by id, or none.
func (h *Host) names() map[string]string {
	var names map[string]string
	if h.containerNames != nil {
		names = h.containerNames()
	}
	if names == nil {
		names = map[string]string{}
	}
	return names
}

// Direction is the attachment's direction derived from its rules.
func (a Attachment) Direction() string {
	if a.Bridge != nil {
		return a.Bridge.Dir
	}
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

// HostBusStatus is a host bus that has attachments of ours.
type HostBusStatus struct {
	Name  string `json:"bus"`
	Index int    `json:"bus_index"`      // 0 when the bus is gone
	Kind  string `json:"kind,omitempty"` // "can" (a controller), "vcan", "vxcan"; "" when gone
	Up    bool   `json:"up"`             // administratively up (IFF_UP)
	// State, Bitrate and DataBitrate are a CAN controller's (see
	// Attachment.HostBusState); empty for virtual buses.
	State       string `json:"state,omitempty"`
	Bitrate     uint32 `json:"bitrate,omitempty"`
	DataBitrate uint32 `json:"data_bitrate,omitempty"`
	FD          bool   `json:"fd"`
	MTU         int    `json:"mtu"`
	Attachments int    `json:"attachments"` // host ends of ours that name the bus, and bridges
	// Bridged is how many of them are bridged by kanto-can-daemon (bridge
	// mode: no host end).
	Bridged int `json:"bridged,omitempty"`
	// Who are the attachments' targets (Attachment.Who), sorted.
	Who []string `json:"who"`
	// Counters are the bus interface's frame counters; nil when the bus
	// is gone.
	Counters *BusCounters `json:"counters,omitempty"`
	// Errors are a CAN controller's error counters and events; nil for
	// virtual buses.
	Errors *BusErrors `json:"errors,omitempty"`
}

// BusCounters are a host bus interface's counters since it was made
// (canlink.LinkStats): frames received from and sent to the bus, their
// data bytes, errors and frames dropped.
type BusCounters struct {
	RxFrames  uint64 `json:"rx_frames"`
	TxFrames  uint64 `json:"tx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxErrors  uint64 `json:"rx_errors"`
	TxErrors  uint64 `json:"tx_errors"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
}

// BusErrors are a CAN controller's error counters now (TxErrorCounter,
// RxErrorCounter: 96 and more is error-warning, 128 error-passive) and
// its error events since it was made. A counter the driver cannot read is
// absent (nil).
type BusErrors struct {
	TxErrorCounter  *uint16 `json:"tx_error_counter,omitempty"`
	RxErrorCounter  *uint16 `json:"rx_error_counter,omitempty"`
	BusErrors       uint32  `json:"bus_errors"`
	ErrorWarning    uint32  `json:"error_warning"`
	ErrorPassive    uint32  `json:"error_passive"`
	BusOff          uint32  `json:"bus_off"`
	ArbitrationLost uint32  `json:"arbitration_lost"`
	Restarts        uint32  `json:"restarts"`
}

// busStatus describes the bus called name; ok false: it does not exist.
func hostBusStatus(name string, l canlink.Link, ok bool) HostBusStatus {
	s := HostBusStatus{Name: name}
	if !ok {
		return s
	}
	s.Index, s.Kind, s.Up, s.MTU = l.Index, l.Kind, l.Up, l.MTU
	s.FD = l.FD()
	if l.CAN != nil {
		s.State = l.CAN.State.String()
		s.Bitrate, s.DataBitrate = l.CAN.Bitrate, l.CAN.DataBitrate
		s.FD = s.FD || l.CAN.FD()
		s.Errors = busErrors(l.CAN)
	}
	if st := l.Stats; st != nil {
		s.Counters = &BusCounters{
			RxFrames: st.RxPackets, TxFrames: st.TxPackets, RxBytes: st.RxBytes, TxBytes: st.TxBytes,
			RxErrors: st.RxErrors, TxErrors: st.TxErrors, RxDropped: st.RxDropped, TxDropped: st.TxDropped,
		}
	}
	return s
}

func busErrors(c *canlink.CANInfo) *BusErrors {
	e := &BusErrors{}
	if c.ErrorCounters != nil {
		tx, rx := c.ErrorCounters.Tx, c.ErrorCounters.Rx
		e.TxErrorCounter, e.RxErrorCounter = &tx, &rx
	}
	if st := c.Stats; st != nil {
		e.BusErrors, e.ErrorWarning, e.ErrorPassive, e.BusOff, e.ArbitrationLost, e.Restarts =
			st.BusErrors, st.ErrorWarning, st.ErrorPassive, st.BusOff, st.ArbitrationLost, st.Restarts
	}
	return e
}

// linksAndEnds dumps the host's links once: every link by name, and the
// host ends of ours with their aliases parsed.
func (h *Host) linksAndEnds() (map[string]canlink.Link, []canlink.Link, []Meta, error) {
	all, err := h.links.Links()
	if err != nil {
		return nil, nil, nil, err
	}
	byName := make(map[string]canlink.Link, len(all))
	var ends []canlink.Link
	var metas []Meta
	for _, l := range all {
		byName[l.Name] = l
		if IsOurs(l) {
			meta, _ := ParseAlias(l.Alias)
			ends = append(ends, l)
			metas = append(metas, meta)
		}
	}
	return byName, ends, metas, nil
}

// HostBuses returns every host bus that has attachments of ours, with its
// state, sorted by name. A bus that is gone is listed with Index 0.
func (h *Host) HostBuses() ([]HostBusStatus, error) {
	byName, _, metas, err := h.linksAndEnds()
	if err != nil {
		return nil, err
	}
	names := h.names()
	who := map[string][]string{}
	bridged, err := h.bridgeRecords()
	if err != nil {
		return nil, err
	}
	bridgedOn := map[string]int{}
	for _, rec := range bridged {
		m := bridgeMeta(rec)
		metas = append(metas, m)
		bridgedOn[m.HostBus]++
	}
	for _, m := range metas {
		a := Attachment{Label: m.Label, Container: m.Container, Name: names[m.Container]}
		who[m.HostBus] = append(who[m.HostBus], a.Who())
	}
	out := make([]HostBusStatus, 0, len(who))
	for name, containers := range who {
		l, ok := byName[name]
		s := hostBusStatus(name, l, ok)
		sort.Strings(containers)
		s.Attachments, s.Who, s.Bridged = len(containers), containers, bridgedOn[name]
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// List returns every attachment of ours in the host's namespace, sorted
// by target and bus.
func (h *Host) List() ([]Attachment, error) {
	byName, ends, metas, err := h.linksAndEnds()
	if err != nil {
		return nil, err
	}
	rules, err := h.gw.List()
	if err != nil {
		return nil, err
	}
	names := h.names()
	var out []Attachment
	for i, end := range ends {
		meta := metas[i]
		a := Attachment{
			Target: meta.Target, Label: meta.Label, Container: meta.Container, Name: names[meta.Container], HostBus: meta.HostBus, Inside: meta.Inside,
			HostEnd: end.Name, HostEndIndex: end.Index, FD: end.MTU == canlink.MTUFD, Mode: ModeGateway,
		}
		bus, ok := byName[meta.HostBus]
		bs := hostBusStatus(meta.HostBus, bus, ok)
		a.HostBusIndex, a.HostBusState, a.HostBusBitrate, a.HostBusDataBitrate, a.HostBusFD = bs.Index, bs.State, bs.Bitrate, bs.DataBitrate, bs.FD
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
	bridged, err := h.bridgeRecords()
	if err != nil {
		return nil, err
	}
	for _, rec := range bridged {
		meta := bridgeMeta(rec)
		a := Attachment{
			Target: meta.Target, Label: meta.Label, Container: meta.Container, Name: names[meta.Container], HostBus: meta.HostBus, Inside: meta.Inside,
			HostEnd: ModeBridge, FD: rec.Bridge.FD, Mode: ModeBridge, Bridge: bridgeGrant(rec), Rules: []RuleState{},
		}
		if r := rec.TxRate; r != nil {
			a.TxRate = &RateState{FramesPerSecond: r.FramesPerSecond, Burst: r.Burst}
		}
		bus, ok := byName[meta.HostBus]
		bs := hostBusStatus(meta.HostBus, bus, ok)
		a.HostBusIndex, a.HostBusState, a.HostBusBitrate, a.HostBusDataBitrate, a.HostBusFD = bs.Index, bs.State, bs.Bitrate, bs.DataBitrate, bs.FD
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if wi, wj := out[i].Who(), out[j].Who(); wi != wj {
			return wi < wj
		}
		return out[i].HostBus < out[j].HostBus
	})
	return out, nil
}

// FilterString shows a can-gw filter the way a user wrote it: an id, a
// range or id/mask in can-utils notation; "all" for no filter.
func FilterString(f *cangw.Filter) string {
	if f == nil {
		return "all"
	}
	return canid.FilterString(*f)
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

// The attachment modes (Attachment.Mode).
const (
	ModeGateway = "gateway"
	ModeBridge  = "bridge"
)

// bridgeRecords are the records of the bridged attachments.
func (h *Host) bridgeRecords() ([]record.Record, error) {
	if h.records == "" {
		return nil, nil
	}
	recs, err := record.List(h.records)
	if errors.Is(err, fs.ErrPermission) {
		// Records written before they were readable by all (0600): a
		// user who may not read them sees the gateway's attachments only.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []record.Record
	for _, r := range recs {
		if isBridgeRecord(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// bridgeGrant is what a bridged attachment's record grants.
func bridgeGrant(rec record.Record) *BridgeGrant {
	g := &BridgeGrant{Dir: "none"}
	req, err := rec.Request()
	if err != nil {
		return g
	}
	g.Dir = req.Dir.String()
	list := func(ids *canid.List, allowed bool) []string {
		if !allowed {
			return nil
		}
		fs, err := compile(ids)
		if err != nil {
			return nil
		}
		var out []string
		for _, f := range fs {
			out = append(out, FilterString(f))
		}
		return out
	}
	g.RX, g.TX = list(req.RX, req.Dir.Receives()), list(req.TX, req.Dir.Transmits())
	return g
}
