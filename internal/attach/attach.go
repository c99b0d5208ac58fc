package attach

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/bridge"
	"github.com/kanto-can/kanto-can/internal/fault"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/ratelimit"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/vxcan"
)

// Host holds the netlink sockets of the host's network namespace, where the
// buses, the host ends and the can-gw rules live, and where the
// attachments' records are kept. Make one with OpenHost, or NewHost over
// sockets of the caller's.
type Host struct {
	links *canlink.Conn // buses and host ends
	pairs *vxcan.Conn   // pairs
	gw    *cangw.Conn
	// tc is the socket for traffic control (rate limits); when nil, one
	// is opened as the others were when first needed.
	tc      *nl.Conn
	records string
	// containerNames gives the containers' names by id (WithNames).
	containerNames func() map[string]string
	cfg            nl.Config // how the sockets are opened
	// sockets are those the Host opened, which Close closes.
	sockets []*nl.Conn
}

// Option configures a Host.
type Option func(*Host)

// WithRecords keeps the attachments' records in dir (package record);
// "" keeps none. Without it: record.DefaultDir.
func WithRecords(dir string) Option { return func(h *Host) { h.records = dir } }

// WithNames gives the containers' current names by id (Kanto's names),
// which List and Buses show; names is called once per listing.
func WithNames(names func() map[string]string) Option {
	return func(h *Host) { h.containerNames = names }
}

// WithPoll opens the sockets in the Go runtime's poller: closing them stops
// a request that waits, and deadlines bound one (the daemon, top). A
// short-lived process (a hook) starts faster without.
func WithPoll() Option { return func(h *Host) { h.cfg.Poll = true } }

func newHost(opts []Option) *Host {
	h := &Host{records: record.DefaultDir}
	for _, o := range opts {
		o(h)
	}
	return h
}

// OpenHost opens the sockets in the caller's network namespace.
func OpenHost(opts ...Option) (*Host, error) {
	h := newHost(opts)
	c, err := nl.DialConfig(h.cfg)
	if err != nil {
		return nil, fmt.Errorf("route netlink socket: %w", err)
	}
	g, err := nl.DialConfig(h.cfg)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("route netlink socket: %w", err)
	}
	// Links and pairs share a socket; rules have their own.
	h.links, h.pairs, h.gw = canlink.NewConn(c), vxcan.NewConn(c), cangw.NewConn(g)
	h.sockets = []*nl.Conn{c, g}
	return h, nil
}

// NewHost is a Host over sockets the caller opened and closes (the
// scripted kernels of host tests): route for links and pairs, rules for
// can-gw, tc for rate limits.
func NewHost(route, rules, tc *nl.Conn, opts ...Option) *Host {
	h := newHost(opts)
	h.links, h.pairs, h.gw, h.tc = canlink.NewConn(route), vxcan.NewConn(route), cangw.NewConn(rules), tc
	return h
}

// Records is the directory of the attachments' records ("" for none).
func (h *Host) Records() string { return h.records }

// Close closes the sockets it opened.
func (h *Host) Close() error {
	var err error
	for _, c := range h.sockets {
		err = errors.Join(err, c.Close())
	}
	return err
}

// lock takes the records' lock (see record.Lock) for a change.
func (h *Host) lock() (unlock func(), err error) {
	if h.records == "" {
		return func() {}, nil
	}
	return record.Lock(h.records)
}

func (h *Host) tcConn() (*nl.Conn, error) {
	if h.tc == nil {
		c, err := nl.DialConfig(h.cfg)
		if err != nil {
			return nil, err
		}
		h.tc = c
		h.sockets = append(h.sockets, c)
	}
	return h.tc, nil
}

// syncRate brings the host end's transmit rate limit to the plan's: the
// police action on the host end's ingress, which frames from the container
// meet before the gateway does.
func (h *Host) syncRate(r *Result, done *undoList) error {
	tc, err := h.tcConn()
	if err != nil {
		return err
	}
	cur, has, err := ratelimit.Get(tc, r.HostEndIndex)
	if err != nil {
		return err
	}
	want := r.Plan.Request.TxRate
	switch {
	case want != nil:
		l := ratelimit.Limit{FramesPerSecond: want.FramesPerSecond, Burst: want.Burst}
		if has && cur == l {
			return nil
		}
		if err := ratelimit.Apply(tc, r.HostEndIndex, l); err != nil {
			return fmt.Errorf("bus %s: rate limit: %w", r.Plan.Request.Host, err)
		}
	case has:
		if err := ratelimit.Remove(tc, r.HostEndIndex); err != nil {
			return fmt.Errorf("bus %s: rate limit: %w", r.Plan.Request.Host, err)
		}
	default:
		return nil
	}
	r.RateChanged = true
	*done = append(*done, func() error {
		if has {
			return ratelimit.Apply(tc, r.HostEndIndex, cur)
		}
		return ratelimit.Remove(tc, r.HostEndIndex)
	})
	return nil
}

// Result says what Attach did for one bus.
type Result struct {
	Plan           Plan
	HostEndIndex   int
	Created        bool // the pair was made by this call
	Added, Removed int  // rules
	RateChanged    bool // the transmit rate limit was set, changed or removed
	// Bridged: kanto-can-daemon carries the frames (bridge mode; no pair,
	// no rules).
	Bridged bool
}

// undoList holds, for each change made so far, the way to take it back.
type undoList []func() error

// Attach wires each granted bus into the target. It takes only what the
// policy granted (policy.Policy.Resolve makes a Granted; no policy file
// grants a request as it is), so no front end can attach around it. It is
// idempotent: for a bus already attached it only adds missing and removes
// extra rules. Every bus is checked before anything changes; if a change
// fails part way, what this call did is undone before the error is
// returned.
//
// While the records' directory holds a hold file (record.HoldFile: the
// package is being removed), Attach refuses and changes nothing.
func (h *Host) Attach(t *target.Target, granted policy.Granted) ([]Result, error) {
	reqs := granted.Buses()
	unlock, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if h.records != "" {
		reason, held, err := record.Held(h.records)
		if err != nil {
			return nil, err
		}
		if held {
			return nil, fmt.Errorf("not attaching: %s", reason)
		}
	}
	return h.attach(t, reqs, nil)
}

// attach does Attach's work under the lock. listed, if not nil, is the
// kernel's current rule list, so that a reconcile lists the rules once for
// all its attachments rather than once each.
func (h *Host) attach(t *target.Target, reqs []request.Bus, listed []cangw.Rule) ([]Result, error) {
	results, existing, err := h.check(t, reqs)
	if err != nil {
		return nil, err
	}
	var done undoList
	rules := &ruleList{gw: h.gw, rules: listed}
	for i := range results {
		if err := h.attachOne(t, &results[i], existing[i], rules, &done); err != nil {
			return nil, done.rollback(err)
		}
	}
	return results, nil
}

// check plans every bus and finds its host end, if it exists, before
// anything changes: a bus that cannot be attached fails the whole call.
// existing[i] is the host end of bus i, nil when it is to be made.
func (h *Host) check(t *target.Target, reqs []request.Bus) (results []Result, existing []*canlink.Link, err error) {
	if err := request.CheckSet(reqs); err != nil {
		return nil, nil, err
	}
	results = make([]Result, len(reqs))
	existing = make([]*canlink.Link, len(reqs))
	for i, req := range reqs {
		p, err := h.plan(req, t)
		if err != nil {
			return nil, nil, err
		}
		results[i].Plan = p
		// The alias must be possible before anything is made.
		if _, err := p.Meta(t).Alias(); err != nil {
			return nil, nil, err
		}
		end, err := h.links.LinkByName(p.HostEnd)
		if errors.Is(err, canlink.ErrNotFound) {
			if results[i].Bridged, err = h.existingBridge(t, p); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := checkExisting(end, t, p); err != nil {
			return nil, nil, err
		}
		existing[i] = &end
	}
	return results, existing, nil
}

// attachOne makes or syncs one bus's attachment and records it; each
// change it makes goes on done.
func (h *Host) attachOne(t *target.Target, r *Result, existing *canlink.Link, rules *ruleList, done *undoList) error {
	if r.Plan.CreateBus {
		if err := h.createVirtualBus(t, r, done); err != nil {
			return err
		}
	}
	if r.Plan.Request.Virtual && !r.Plan.Pending {
		all, err := rules.get()
		if err != nil {
			return err
		}
		if err := h.addPeerRules(t, &r.Plan, all); err != nil {
			return err
		}
	}
	switch {
	case r.Bridged: // an existing bridge: its record and the daemon's bridge are renewed
	case existing == nil:
		if err := h.create(t, r, done); err != nil {
			return err
		}
	default:
		all, err := rules.get()
		if err != nil {
			return err
		}
		r.HostEndIndex = existing.Index
		if err := h.sync(r, all, done); err != nil {
			return err
		}
	}
	if err := h.record(t, r, done); err != nil {
		return err
	}
	if r.Bridged {
		// The daemon reads the record; the attach returns once it forwards.
		if err := bridge.Ask(h.records, r.Plan.HostEnd); err != nil {
			return fmt.Errorf("bus %s: %w", r.Plan.Request.Host, err)
		}
	}
	return nil
}

// rollback undoes the changes, newest first, and returns cause, with what
// could not be undone.
func (u undoList) rollback(cause error) error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w (and undoing the partial attach failed: %v)", cause, errors.Join(errs...))
	}
	return cause
}

// ruleList is the kernel's rule list, listed once, when first needed.
type ruleList struct {
	gw    *cangw.Conn
	rules []cangw.Rule // nil until listed
}

func (l *ruleList) get() ([]cangw.Rule, error) {
	if l.rules == nil {
		rules, err := l.gw.List()
		if err != nil {
			return nil, err
		}
		l.rules = append([]cangw.Rule{}, rules...) // listed, even if empty
	}
	return l.rules, nil
}

// record writes the attachment's record; an undo restores what was there
// before (the old record, or none).
func (h *Host) record(t *target.Target, r *Result, done *undoList) error {
	if h.records == "" {
		return nil
	}
	rec := record.Record{HostEnd: r.Plan.HostEnd, Target: t.ID, Label: t.Label, Container: t.Container,
		Bus: r.Plan.Request.String(), TxRate: r.Plan.Request.TxRate, Virtual: r.Plan.Request.Virtual,
		EndsWithTask: t.EndsWithTask && t.Container != ""}
	if r.Bridged {
		rec.Bridge = &record.Bridge{NetNS: t.NS.Name(), FD: r.Plan.MTU == canlink.MTUFD}
	}
	if t.Container != "" && t.PID > 0 {
		// The container's init process, named for good: the daemon ends
		// the attachment when it is gone.
		if t.Started == 0 {
			start, err := target.ProcessStart(t.PID)
			if err != nil {
				return fmt.Errorf("container %s: pid %d: %w", t.Container, t.PID, err)
			}
			t.Started = start
		}
		rec.PID, rec.Started = t.PID, t.Started
	}
	// A record that was there (an existing attachment's, whose grant may
	// have changed) is put back by an undo, as the rules are; a new one
	// goes.
	old, had, err := record.Get(h.records, rec.HostEnd)
	if err != nil {
		return err
	}
	if err := record.Write(h.records, rec); err != nil {
		return err
	}
	*done = append(*done, func() error {
		if had {
			return record.Write(h.records, old)
		}
		return record.Remove(h.records, rec.HostEnd)
	})
	return nil
}

// virtualBusAlias marks the vcans kanto-can made for virtual buses.
const virtualBusAlias = aliasMagic + " virtual bus"

// createVirtualBus makes the vcan of a virtual bus and plans again with it.
func (h *Host) createVirtualBus(t *target.Target, r *Result, done *undoList) error {
	req := r.Plan.Request
	mtu := canlink.MTUFD
	if req.FD == request.FDOff {
		mtu = canlink.MTUClassic
	}
	hostBus, err := h.links.CreateVCAN(req.Host, mtu, virtualBusAlias)
	if errors.Is(err, unix.EEXIST) { // made meanwhile by another attach
		hostBus, err = h.links.LinkByName(req.Host)
	} else if err == nil {
		*done = append(*done, func() error { return ignoreGone(h.links.Delete(hostBus.Index)) })
	}
	if err != nil {
		return fmt.Errorf("bus %s: %w", req.Host, err)
	}
	p, err := MakePlan(req, t.ID, hostBus)
	if err != nil {
		return err
	}
	r.Plan = p
	return nil
}

// addPeerRules adds to a plan on a virtual bus the direct rules to and from
// every other container on that bus, read back from the kernel.
func (h *Host) addPeerRules(t *target.Target, p *Plan, current []cangw.Rule) error {
	ends, err := h.pairs.Pairs()
	if err != nil {
		return err
	}
	for _, end := range ends {
		meta, ok := ParseAlias(end.Alias)
		if !ok || meta.HostBus != p.Request.Host || meta.Target == t.ID || !strings.HasPrefix(end.Name, HostEndPrefix) {
			continue
		}
		peer := Peer{Index: end.Index, FD: end.MTU == canlink.MTUFD}
		for _, r := range current {
			if r.Flags&cangw.FlagFD != 0 { // the classic rules carry the same filters
				continue
			}
			switch {
			case r.Src == p.HostBusIndex && r.Dst == end.Index:
				peer.RX = append(peer.RX, r.Filter)
			case r.Src == end.Index && r.Dst == p.HostBusIndex:
				peer.TX = append(peer.TX, r.Filter)
			}
		}
		more, err := p.PeerRules(peer)
		if err != nil {
			return err
		}
		p.Rules = append(p.Rules, more...)
	}
	return nil
}

func (h *Host) plan(req request.Bus, t *target.Target) (Plan, error) {
	hostBus, err := h.links.LinkByName(req.Host)
	switch {
	case errors.Is(err, canlink.ErrNotFound) && req.Virtual:
		return Plan{Request: req, HostEnd: HostEndName(t.ID, req.Host), CreateBus: true}, nil
	case errors.Is(err, canlink.ErrNotFound) && req.Optional:
		return PlanPending(req, t.ID), nil
	case errors.Is(err, canlink.ErrNotFound):
		return Plan{}, fmt.Errorf("host bus %s does not exist", req.Host)
	case err != nil:
		return Plan{}, err
	}
	return MakePlan(req, t.ID, hostBus)
}

// checkExisting makes sure a host end found under our name is ours, for
// this target, and compatible with the plan.
func checkExisting(end canlink.Link, t *target.Target, p Plan) error {
	meta, ok := ParseAlias(end.Alias)
	if end.Kind != "vxcan" || !ok {
		return fmt.Errorf("interface %s exists but was not made by kanto-can; refusing to touch it", end.Name)
	}
	if meta.Target != t.ID || meta.HostBus != p.Request.Host {
		return fmt.Errorf("interface %s belongs to another attachment (%s, bus %s)", end.Name, meta.Label, meta.HostBus)
	}
	if meta.Inside != p.Request.Inside {
		return fmt.Errorf("bus %s is already attached to %s as %s; detach it first to rename it %s", p.Request.Host, t.Label, meta.Inside, p.Request.Inside)
	}
	// A pair made FD-capable for a bus that was missing may serve a
	// classic bus; the other way round FD frames could not pass.
	if end.MTU < p.MTU {
		return fmt.Errorf("bus %s is already attached to %s with MTU %d (classic only); detach it first to forward CAN FD", p.Request.Host, t.Label, end.MTU)
	}
	if end.MTU > p.MTU && p.Request.FD == request.FDOff {
		return fmt.Errorf("bus %s is already attached to %s with MTU %d (FD); detach it first for fd=off", p.Request.Host, t.Label, end.MTU)
	}
	return nil
}

// create makes the pair and its rules. Deleting the pair undoes both: the
// kernel deletes every rule naming a vanished interface.
func (h *Host) create(t *target.Target, r *Result, done *undoList) error {
	p := r.Plan
	if t.NS == nil {
		// A target known only from a record: its pair is gone, and with it
		// the way into its namespace.
		return fmt.Errorf("bus %s: the host end %s is gone and %s's network namespace is unknown", p.Request.Host, p.HostEnd, t.Label)
	}
	if p.Request.Bridge == request.BridgeAlways {
		return h.createBridged(t, r, done)
	}
	alias, err := p.Meta(t).Alias()
	if err != nil {
		return err
	}
	end, err := h.pairs.Create(vxcan.Pair{Name: p.HostEnd, PeerName: p.Request.Inside, PeerNS: t.NS, MTU: p.MTU, Alias: alias})
	if errors.Is(err, unix.EOPNOTSUPP) { // "Unknown device type": no vxcan module
		if p.Request.Bridge == request.BridgeNever {
			return fmt.Errorf("bus %s: this kernel has no vxcan (%v), and the policy says \"bridge\": \"never\" for this bus", p.Request.Host, err)
		}
		return h.createBridged(t, r, done)
	}
	if errors.Is(err, unix.EEXIST) {
		if _, again := h.links.LinkByName(p.HostEnd); again == nil {
			return fmt.Errorf("bus %s is being attached to %s by someone else at the same time", p.Request.Host, t.Label)
		}
		return fmt.Errorf("inside name %s is already taken in %s's network namespace", p.Request.Inside, t.Label)
	}
	if err != nil {
		return fmt.Errorf("bus %s: %w", p.Request.Host, err)
	}
	*done = append(*done, func() error { return ignoreGone(h.links.Delete(end.Index)) })
	r.Created, r.HostEndIndex = true, end.Index
	fault.Point("pair-made")
	for _, rule := range p.Resolve(end.Index) {
		if err := h.gw.Add(rule); err != nil {
			return fmt.Errorf("bus %s: %w", p.Request.Host, err)
		}
		r.Added++
		fault.Point("rule-added")
	}
	if p.Request.TxRate == nil {
		return nil
	}
	return h.syncRate(r, done) // undone with the pair anyway
}

// sync brings an existing attachment's rules to the plan: add what is
// missing first (so forwarding never stops), then remove what is extra,
// including duplicates, which would forward frames twice.
func (h *Host) sync(r *Result, current []cangw.Rule, done *undoList) error {
	want := r.Plan.Resolve(r.HostEndIndex)
	var have []cangw.Rule
	for _, c := range current {
		if c.Src == r.HostEndIndex || c.Dst == r.HostEndIndex {
			have = append(have, c)
		}
	}
	used := make([]bool, len(have))
	for _, w := range want {
		found := false
		for j, c := range have {
			if !used[j] && c.Equal(w) {
				used[j], found = true, true
				break
			}
		}
		if found {
			continue
		}
		if err := h.gw.Add(w); err != nil {
			return fmt.Errorf("bus %s: %w", r.Plan.Request.Host, err)
		}
		*done = append(*done, func() error { return h.gw.Delete(w) })
		r.Added++
	}
	for j, c := range have {
		if used[j] {
			continue
		}
		if err := h.gw.Delete(c); err != nil {
			return fmt.Errorf("bus %s: %w", r.Plan.Request.Host, err)
		}
		*done = append(*done, func() error { return h.gw.Add(c) })
		r.Removed++
	}
	return h.syncRate(r, done)
}

func ignoreGone(err error) error {
	if errors.Is(err, canlink.ErrNotFound) {
		return nil
	}
	return err
}

// DetachContainer removes every attachment recorded for a container id,
// whatever namespace it was in: for when the container's process is gone
// (an OCI poststop hook) but its namespace, and so the pair, may not be.
func (h *Host) DetachContainer(id string) ([]string, error) {
	// By poststop the container's namespace, and with it the pair, is
	// usually gone already: its records must go too.
	gone, err := h.detachMatching(func(m Meta) bool { return m.Container == id },
		func(r record.Record) bool { return r.Container == id })
	return busesOf(gone), err
}

// detachMatching deletes every host end of ours whose alias matches end
// (the kernel then drops their rules), then the records that match rec
// and have no host end left. It returns what each deleted end was.
func (h *Host) detachMatching(end func(Meta) bool, rec func(record.Record) bool) ([]Meta, error) {
	unlock, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ends, err := h.pairs.Pairs()
	if err != nil {
		return nil, err
	}
	gone, err := h.deleteOurs(ends, end)
	if err != nil {
		return gone, err
	}
	bridged, err := h.forget(rec)
	return append(gone, bridged...), err
}

// forget removes the records that match and whose host end no longer
// exists, and the bridged attachments that match (their vcan, then their
// record); it returns what each bridged one was.
func (h *Host) forget(match func(record.Record) bool) ([]Meta, error) {
	if h.records == "" {
		return nil, nil
	}
	recs, err := record.List(h.records)
	if err != nil {
		return nil, err
	}
	var bridged []Meta
	for _, r := range recs {
		if !match(r) {
			continue
		}
		if isBridgeRecord(r) {
			if err := h.removeBridged(r); err != nil {
				return bridged, err
			}
			bridged = append(bridged, bridgeMeta(r))
			continue
		}
		if _, err := h.links.LinkByName(r.HostEnd); errors.Is(err, canlink.ErrNotFound) {
			if err := record.Remove(h.records, r.HostEnd); err != nil {
				return bridged, err
			}
		}
	}
	return bridged, nil
}

// Detach removes the target's attachments: those of the named host buses,
// or all of them when hostBuses is empty. It returns the host buses detached.
// Links are removed only when their alias says they are ours and this
// target's; the kernel then drops their rules.
func (h *Host) Detach(t *target.Target, hostBuses []string) ([]string, error) {
	unlock, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var ends []canlink.Link
	if len(hostBuses) > 0 {
		for _, hostBus := range hostBuses {
			end, err := h.links.LinkByName(HostEndName(t.ID, hostBus))
			if errors.Is(err, canlink.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			ends = append(ends, end)
		}
	} else {
		all, err := h.pairs.Pairs()
		if err != nil {
			return nil, err
		}
		ends = all
	}
	gone, err := h.deleteOurs(ends, func(m Meta) bool { return m.Target == t.ID })
	if err != nil {
		return busesOf(gone), err
	}
	bridged, err := h.forget(func(r record.Record) bool {
		return r.Target == t.ID && (len(hostBuses) == 0 || slices.Contains(hostBuses, recordHostBus(r)))
	})
	return busesOf(append(gone, bridged...)), err
}

// DetachAll removes every attachment kanto-can made on this host, whatever
// container it is for, and every record: what a package's removal does
// (the containers keep running, without their CAN interfaces). It returns
// what it removed, one Meta per host end.
func (h *Host) DetachAll() ([]Meta, error) {
	// Records whose pair went with its namespace have no host end left.
	return h.detachMatching(func(Meta) bool { return true }, func(record.Record) bool { return true })
}

// deleteOurs deletes the host ends that are ours and match; the kernel
// then drops their rules. It returns what each was.
func (h *Host) deleteOurs(ends []canlink.Link, match func(Meta) bool) ([]Meta, error) {
	var gone []Meta
	for _, end := range ends {
		meta, _ := ParseAlias(end.Alias)
		if !IsOurs(end) || !match(meta) {
			continue
		}
		if err := ignoreGone(h.links.Delete(end.Index)); err != nil {
			return gone, err
		}
		if h.records != "" {
			if err := record.Remove(h.records, end.Name); err != nil {
				return gone, err
			}
		}
		gone = append(gone, meta)
	}
	return gone, nil
}

// busesOf is the host bus of each.
func busesOf(ms []Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.HostBus)
	}
	return out
}
