package attach

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// Report says what a reconcile changed, by host end.
type Report struct {
	// Restored attachments got rules or their rate limit back, typically
	// because their bus came back with a new ifindex.
	Restored []string `json:"restored,omitempty"`
	// Removed host ends were ours but no longer wanted: half made by a
	// process that died before recording them, or left by a container
	// whose init process is gone while its namespace lives on.
	Removed []string `json:"removed,omitempty"`
	// Forgotten records named host ends that were gone already (the
	// container's namespace went away, taking its pair).
	Forgotten []string `json:"forgotten,omitempty"`
}

// Changed reports whether the reconcile changed anything.
func (r Report) Changed() bool {
	return len(r.Restored)+len(r.Removed)+len(r.Forgotten) > 0
}

// Scope says which attachments a reconcile looks at. An event concerns a
// few of them (one host end, the attachments on one bus, one container's),
// and looking at only those keeps a storm of container starts from costing
// a pass over every attachment per start.
type Scope struct {
	Full       bool     // everything: at start, after missed events
	HostEnds   []string // host ends that appeared or went away
	HostBuses  []string // host buses that appeared or changed
	Containers []string // containers whose task exited or was deleted
}

// Merge adds o to s.
func (s *Scope) Merge(o Scope) {
	s.Full = s.Full || o.Full
	s.HostEnds = appendNew(s.HostEnds, o.HostEnds...)
	s.HostBuses = appendNew(s.HostBuses, o.HostBuses...)
	s.Containers = appendNew(s.Containers, o.Containers...)
}

// Empty reports whether s covers nothing.
func (s Scope) Empty() bool {
	return !s.Full && len(s.HostEnds)+len(s.HostBuses)+len(s.Containers) == 0
}

// covers reports whether a record is in scope.
func (s Scope) covers(rec record.Record, hostBus string) bool {
	return slices.Contains(s.HostEnds, rec.HostEnd) || s.syncs(rec, hostBus)
}

// syncs reports whether a record's rules are to be checked. A host end that
// appeared or went away is only checked for existence: its rules are the
// business of the attach that made it.
func (s Scope) syncs(rec record.Record, hostBus string) bool {
	return s.Full || slices.Contains(s.HostBuses, hostBus) ||
		(rec.Container != "" && slices.Contains(s.Containers, rec.Container))
}

// hostEndsOnly reports whether s names host ends and nothing else.
func (s Scope) hostEndsOnly() bool {
	return !s.Full && len(s.HostBuses)+len(s.Containers) == 0
}

func appendNew(to []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(to, a) {
			to = append(to, a)
		}
	}
	return to
}

// Reconcile makes the kernel match the records, for the attachments in
// scope:
//   - a host end of ours without a record was left half made by a process
//     killed part way (the records' lock, held here, rules out one still at
//     work): it is deleted, and the kernel drops its rules;
//   - an attachment whose container's init process is gone is removed,
//     even if something (a network sandbox) keeps its namespace alive;
//   - a record whose host end is gone is removed;
//   - every other attachment gets back the rules and rate limit the kernel
//     forgot, for example when its bus came back with a new ifindex after an
//     adapter was replugged. An optional bus that appeared gets routed.
//
// Links and rules that are not ours are never touched.
func (h *Host) Reconcile(scope Scope) (Report, error) {
	var rep Report
	if h.records == "" || scope.Empty() {
		return rep, nil
	}
	unlock, err := h.lock()
	if err != nil {
		return rep, err
	}
	defer unlock()
	recs, err := h.recordsIn(scope)
	if err != nil {
		return rep, err
	}
	ends, err := h.hostEndsIn(scope, recs)
	if err != nil {
		return rep, err
	}
	present, errs := h.removeUnrecorded(ends, recs, &rep)
	errs = append(errs, h.reconcileRecords(scope, recs, present, &rep)...)
	return rep, errors.Join(errs...)
}

// recordsIn returns the records a reconcile of scope reads: those of its
// host ends only, when it names nothing else (a container start costs the
// same with a hundred other attachments as with none), else all.
func (h *Host) recordsIn(scope Scope) ([]record.Record, error) {
	if !scope.hostEndsOnly() {
		return record.List(h.records)
	}
	var recs []record.Record
	for _, name := range scope.HostEnds {
		rec, ok, err := record.Get(h.records, name)
		if err != nil {
			return nil, err
		}
		if ok {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// hostEndsIn returns the vxcan ends to look at: all of them for a full
// scope, else those the scope names and those of the records it covers.
func (h *Host) hostEndsIn(scope Scope, recs []record.Record) ([]canlink.Link, error) {
	if scope.Full {
		return h.pairs.Pairs()
	}
	names := slices.Clone(scope.HostEnds)
	for _, rec := range recs {
		if scope.covers(rec, recordHostBus(rec)) {
			names = appendNew(names, rec.HostEnd)
		}
	}
	var ends []canlink.Link
	for _, name := range names {
		l, err := h.links.LinkByName(name)
		if errors.Is(err, canlink.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ends = append(ends, l)
	}
	return ends, nil
}

// removeUnrecorded deletes the host ends of ours that have no record
// (half made by a process that died: the lock rules out a live one) and
// returns the recorded ones by name.
func (h *Host) removeUnrecorded(ends []canlink.Link, recs []record.Record, rep *Report) (map[string]canlink.Link, []error) {
	recorded := make(map[string]bool, len(recs))
	for _, rec := range recs {
		recorded[rec.HostEnd] = true
	}
	present := map[string]canlink.Link{}
	var errs []error
	for _, end := range ends {
		if !IsOurs(end) {
			continue
		}
		if recorded[end.Name] {
			present[end.Name] = end
			continue
		}
		if err := ignoreGone(h.links.Delete(end.Index)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", end.Name, err))
			continue
		}
		rep.Removed = append(rep.Removed, end.Name)
	}
	return present, errs
}

// reconcileRecords decides for each record in scope: forget it (its host
// end is gone), end its attachment (its container is gone), or put back
// what the kernel forgot of it.
func (h *Host) reconcileRecords(scope Scope, recs []record.Record, present map[string]canlink.Link, rep *Report) []error {
	var errs []error
	// The kernel's rules, listed once when first needed: an attachment's
	// sync only looks at the rules naming its own host end.
	var rules []cangw.Rule
	for _, rec := range recs {
		hostBus := recordHostBus(rec)
		if !scope.covers(rec, hostBus) {
			continue
		}
		end, ok := present[rec.HostEnd]
		switch {
		case isBridgeRecord(rec):
			// The daemon's bridge carries it; it ends with its container.
			if containerGone(rec) || taskEnded(scope, rec) {
				if err := h.removeBridged(rec); err != nil {
					errs = append(errs, err)
					continue
				}
				rep.Removed = append(rep.Removed, rec.HostEnd)
			}
			continue
		case !ok:
			if err := record.Remove(h.records, rec.HostEnd); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Forgotten = append(rep.Forgotten, rec.HostEnd)
			continue
		case containerGone(rec) || taskEnded(scope, rec):
			if err := h.removeAttachment(rec, end); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", rec.HostEnd, err))
				continue
			}
			rep.Removed = append(rep.Removed, rec.HostEnd)
			continue
		case !scope.syncs(rec, hostBus):
			continue
		}
		req, err := rec.Request()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := h.links.LinkByName(req.Host); errors.Is(err, canlink.ErrNotFound) && !req.Optional && !req.Virtual {
			continue // the host bus is away: its rules come back with it
		}
		if rules == nil {
			if rules, err = h.gw.List(); err != nil {
				errs = append(errs, err)
				break
			}
		}
		restored, err := h.restore(rec, req, rules)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.HostEnd, err))
		} else if restored {
			rep.Restored = append(rep.Restored, rec.HostEnd)
		}
		if req.Virtual {
			// A virtual bus's peer rules are shared between its
			// attachments: list again. Other changes only concern the
			// rules naming this attachment's host end, which no later
			// attachment looks at.
			rules = nil
		}
	}
	return errs
}

// removeAttachment deletes a recorded host end (the kernel drops its rules)
// and its record.
func (h *Host) removeAttachment(rec record.Record, end canlink.Link) error {
	if err := ignoreGone(h.links.Delete(end.Index)); err != nil {
		return err
	}
	return record.Remove(h.records, rec.HostEnd)
}

// restore attaches a record's grant again, which adds what the kernel
// forgot of it; true when anything changed.
func (h *Host) restore(rec record.Record, req request.Bus, rules []cangw.Rule) (bool, error) {
	t := &target.Target{ID: rec.Target, Label: rec.Label, Container: rec.Container, PID: rec.PID, Started: rec.Started, EndsWithTask: rec.EndsWithTask}
	res, err := h.attach(t, []request.Bus{req}, rules)
	if err != nil {
		return false, err
	}
	return res[0].Added+res[0].Removed > 0 || res[0].RateChanged, nil
}

// recordHostBus is the host bus of a record ("" if the record is malformed;
// Reconcile reports that).
func recordHostBus(rec record.Record) string {
	b, err := request.ParseBus(rec.Bus)
	if err != nil {
		return ""
	}
	return b.Host
}

// IsOurs reports whether a host-side link is a host end kanto-can made.
func IsOurs(end canlink.Link) bool {
	_, ok := ParseAlias(end.Alias)
	return ok && end.Kind == "vxcan" && strings.HasPrefix(end.Name, HostEndPrefix)
}

// taskEnded reports whether the scope is a containerd task event of the
// record's container and the record ends with its task (a pod sandbox).
func taskEnded(scope Scope, rec record.Record) bool {
	return rec.EndsWithTask && rec.Container != "" && slices.Contains(scope.Containers, rec.Container)
}

// containerGone reports whether the record's container has ended: its init
// process is gone (or is another process reusing the pid). Records without
// a container process, or a process that cannot be read, count as alive.
func containerGone(rec record.Record) bool {
	if rec.Container == "" || rec.PID <= 0 || rec.Started == 0 {
		return false
	}
	start, err := target.ProcessStart(rec.PID)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && start != rec.Started
}
