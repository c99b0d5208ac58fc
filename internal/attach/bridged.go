package attach

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/bridge"
	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
	"github.com/kanto-can/kanto-can/nl"
)

// Bridge mode (docs/design.md): where the kernel has no vxcan, or the
// policy says so, the container gets a vcan made in its namespace, and
// kanto-can-daemon carries the frames (package bridge). The record, under
// the host end name the pair would have had, is the attachment's only
// trace on the host.

// createBridged makes the container's vcan, up, under its inside name,
// with the host bus's MTU and our alias (so that it is known as ours inside).
func (h *Host) createBridged(t *target.Target, r *Result, done *undoList) error {
	p := r.Plan
	if h.records == "" {
		return fmt.Errorf("bus %s: bridge mode needs the records' directory", p.Request.Host)
	}
	alias, err := p.Meta(t).Alias()
	if err != nil {
		return err
	}
	links, err := canlink.DialConfig(nl.Config{NetNS: int(t.NS.Fd())})
	if err != nil {
		return fmt.Errorf("bus %s: %s's network namespace: %w", p.Request.Host, t.Label, err)
	}
	defer links.Close()
	_, err = links.CreateVCAN(p.Request.Inside, p.MTU, alias)
	if errors.Is(err, unix.EEXIST) && removeStale(links, t.ID, p.Request.Inside) {
		_, err = links.CreateVCAN(p.Request.Inside, p.MTU, alias)
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("inside name %s is already taken in %s's network namespace", p.Request.Inside, t.Label)
	}
	if err != nil {
		return fmt.Errorf("bus %s: %w", p.Request.Host, err)
	}
	ns := t.NS.Name()
	*done = append(*done, func() error { return deleteInside(ns, t.ID, p.Request.Inside) })
	r.Created, r.Bridged = true, true
	return nil
}

// removeStale deletes a vcan of ours for this target that has no record
// (existingBridge found none): left by an attachment whose removal could
// not reach the namespace. It reports whether one was deleted.
func removeStale(links *canlink.Conn, targetID, inside string) bool {
	l, err := links.LinkByName(inside)
	if err != nil || !isOurVCAN(l, targetID) {
		return false
	}
	return links.Delete(l.Index) == nil
}

// isOurVCAN reports whether a link in a container is a bridged vcan of ours
// for this target.
func isOurVCAN(l canlink.Link, targetID string) bool {
	m, ok := ParseAlias(l.Alias)
	return ok && l.Kind == "vcan" && m.Target == targetID
}

// DeleteBridgedVCAN deletes a stopped bridge's vcan, if it is ours, in the
// namespace nsFD (the daemon's, asked of the bridge's socket).
func DeleteBridgedVCAN(nsFD int, spec bridge.Spec) error {
	links, err := canlink.DialConfig(nl.Config{NetNS: nsFD})
	if err != nil {
		return err
	}
	defer links.Close()
	l, err := links.LinkByName(spec.Inside)
	if errors.Is(err, canlink.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !isOurVCAN(l, spec.Target) {
		return nil
	}
	return ignoreGone(links.Delete(l.Index))
}

// deleteInside deletes a container's vcan if it is ours; a namespace or
// interface already gone is not an error.
func deleteInside(nsPath, targetID, inside string) error {
	ns, err := target.FromPath(nsPath)
	if err != nil {
		return nil // the namespace is gone, and the vcan with it
	}
	defer ns.Close()
	if ns.ID != targetID {
		return nil // the path names another namespace now
	}
	links, err := canlink.DialConfig(nl.Config{NetNS: int(ns.NS.Fd())})
	if err != nil {
		return err
	}
	defer links.Close()
	l, err := links.LinkByName(inside)
	if errors.Is(err, canlink.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !isOurVCAN(l, targetID) {
		return nil // not ours: never touched
	}
	return ignoreGone(links.Delete(l.Index))
}

// removeBridged ends a bridged attachment: its vcan, its record, and the
// daemon's bridge, whose socket in the container's namespace would keep
// that namespace (and so the vcan) alive after the container is gone.
func (h *Host) removeBridged(rec record.Record) error {
	if err := deleteInside(rec.Bridge.NetNS, rec.Target, bridgeInside(rec)); err != nil {
		return fmt.Errorf("%s: %w", rec.HostEnd, err)
	}
	if err := record.Remove(h.records, rec.HostEnd); err != nil {
		return err
	}
	return bridge.Release(h.records, rec.HostEnd)
}

// bridgeInside is the recorded attachment's inside name.
func bridgeInside(rec record.Record) string {
	b, err := request.ParseBus(rec.Bus)
	if err != nil {
		return ""
	}
	return b.Inside
}

// existingBridge returns the record of the target's bridged attachment of
// a bus, if there is one.
func (h *Host) existingBridge(t *target.Target, p Plan) (bool, error) {
	if h.records == "" {
		return false, nil
	}
	rec, ok, err := record.Get(h.records, p.HostEnd)
	if err != nil || !ok || rec.Bridge == nil || rec.Target != t.ID {
		return false, err
	}
	if inside := bridgeInside(rec); inside != p.Request.Inside {
		return false, fmt.Errorf("bus %s is already attached to %s as %s; detach it first to rename it %s", p.Request.Host, t.Label, inside, p.Request.Inside)
	}
	if rec.Bridge.FD != (p.MTU == canlink.MTUFD) {
		return false, fmt.Errorf("bus %s is already bridged to %s with fd=%v; detach it first to change it", p.Request.Host, t.Label, rec.Bridge.FD)
	}
	return true, nil
}

// BridgeSpec is what the daemon bridges for a record.
func BridgeSpec(rec record.Record) (bridge.Spec, error) {
	if rec.Bridge == nil {
		return bridge.Spec{}, fmt.Errorf("record %s: not a bridged attachment", rec.HostEnd)
	}
	req, err := rec.Request()
	if err != nil {
		return bridge.Spec{}, err
	}
	s := bridge.Spec{Key: rec.HostEnd, NetNS: rec.Bridge.NetNS, Target: rec.Target, Inside: req.Inside,
		HostBus: req.Host, FD: rec.Bridge.FD, Rate: rec.TxRate}
	if s.RX, err = socketFilters(req.RX, req.Dir.Receives()); err != nil {
		return s, fmt.Errorf("record %s: rx: %w", rec.HostEnd, err)
	}
	if s.TX, err = socketFilters(req.TX, req.Dir.Transmits()); err != nil {
		return s, fmt.Errorf("record %s: tx: %w", rec.HostEnd, err)
	}
	return s, nil
}

// socketFilters are the CAN_RAW filters of an allow-list: the same
// disjoint blocks as the gateway's rules; none when the direction is not
// allowed, nil (every frame) without a list.
func socketFilters(ids *canid.List, allowed bool) ([]unix.CanFilter, error) {
	if !allowed {
		return []unix.CanFilter{}, nil
	}
	fs, err := compile(ids)
	if err != nil || (len(fs) == 1 && fs[0] == nil) {
		return nil, err
	}
	out := make([]unix.CanFilter, len(fs))
	for i, f := range fs {
		out[i] = unix.CanFilter{Id: f.ID, Mask: f.Mask}
	}
	return out, nil
}

// isBridgeRecord reports whether a record is of a bridged attachment.
func isBridgeRecord(rec record.Record) bool { return rec.Bridge != nil }

// bridgeMeta is what ls and detach say of a bridged attachment.
func bridgeMeta(rec record.Record) Meta {
	b, _ := request.ParseBus(rec.Bus)
	return Meta{Target: rec.Target, Label: rec.Label, HostBus: b.Host, Inside: b.Inside, Container: rec.Container}
}

// BridgeEnded is told that the daemon's bridge of the record key ended by
// itself (its vcan went: the container's namespace ended, or a detach):
// the record goes too, unless the vcan is still there (a new attach made
// it again meanwhile). It reports whether the record was removed.
func (h *Host) BridgeEnded(key string) (bool, error) {
	unlock, err := h.lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	rec, ok, err := record.Get(h.records, key)
	if err != nil || !ok || !isBridgeRecord(rec) {
		return false, err
	}
	if insideExists(rec.Bridge.NetNS, rec.Target, bridgeInside(rec)) {
		return false, nil
	}
	return true, record.Remove(h.records, key)
}

// insideExists reports whether a container's vcan of ours is there.
func insideExists(nsPath, targetID, inside string) bool {
	ns, err := target.FromPath(nsPath)
	if err != nil {
		return false
	}
	defer ns.Close()
	if ns.ID != targetID {
		return false
	}
	links, err := canlink.DialConfig(nl.Config{NetNS: int(ns.NS.Fd())})
	if err != nil {
		return true // cannot tell: keep the record
	}
	defer links.Close()
	l, err := links.LinkByName(inside)
	if err != nil {
		return !errors.Is(err, canlink.ErrNotFound)
	}
	return isOurVCAN(l, targetID)
}
