package attach

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
	"github.com/kanto-can/kanto-can/vxcan"
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

// Reconcile makes the kernel match the records:
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
func (h *Host) Reconcile() (Report, error) {
	var rep Report
	if h.Records == "" {
		return rep, nil
	}
	unlock, err := h.lock()
	if err != nil {
		return rep, err
	}
	defer unlock()
	recs, err := record.List(h.Records)
	if err != nil {
		return rep, err
	}
	ends, err := h.Links.Pairs()
	if err != nil {
		return rep, err
	}
	recorded := make(map[string]bool, len(recs))
	for _, rec := range recs {
		recorded[rec.HostEnd] = true
	}
	present := make(map[string]vxcan.Link, len(ends))
	// The kernel's rules, listed once: an attachment's sync only looks at
	// the rules naming its own host end, and after a change the list is
	// taken again.
	rules, err := h.GW.List()
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, end := range ends {
		if !isOurs(end) {
			continue
		}
		if recorded[end.Name] {
			present[end.Name] = end
			continue
		}
		if err := ignoreGone(h.Links.Delete(end.Index)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", end.Name, err))
			continue
		}
		rep.Removed = append(rep.Removed, end.Name)
	}
	for _, rec := range recs {
		end, ok := present[rec.HostEnd]
		if !ok {
			if err := record.Remove(h.Records, rec.HostEnd); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Forgotten = append(rep.Forgotten, rec.HostEnd)
			continue
		}
		if containerGone(rec) {
			err := ignoreGone(h.Links.Delete(end.Index))
			if err == nil {
				err = record.Remove(h.Records, rec.HostEnd)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", rec.HostEnd, err))
				continue
			}
			rep.Removed = append(rep.Removed, rec.HostEnd)
			continue
		}
		b, err := rec.Request()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := h.Links.LinkByName(b.Host); errors.Is(err, vxcan.ErrNotFound) && !b.Optional && !b.Virtual {
			continue // the bus is away: its rules come back with it
		}
		t := &target.Target{ID: rec.Target, Label: rec.Label, Container: rec.Container, PID: rec.PID, Started: rec.Started}
		res, err := h.attach(t, []request.Bus{b}, rules)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.HostEnd, err))
		} else if res[0].Added+res[0].Removed > 0 || res[0].RateChanged {
			rep.Restored = append(rep.Restored, rec.HostEnd)
		}
		if err != nil || res[0].Added+res[0].Removed > 0 || b.Virtual {
			// Rules changed (or may have: a failed attach was undone, a
			// virtual bus's peer rules are shared): list them again.
			var lerr error
			if rules, lerr = h.GW.List(); lerr != nil {
				errs = append(errs, lerr)
				break
			}
		}
	}
	return rep, errors.Join(errs...)
}

// isOurs reports whether a host-side link is a host end kanto-can made.
func isOurs(end vxcan.Link) bool {
	_, ok := ParseAlias(end.Alias)
	return ok && end.Kind == "vxcan" && strings.HasPrefix(end.Name, HostEndPrefix)
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
