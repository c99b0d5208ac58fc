package daemon

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/nl"
)

// DefaultAuditInterval is how often the daemon counts the gateway rules of
// its host ends.
const DefaultAuditInterval = time.Second

// auditDeadline bounds one audit's two dumps: a kernel that does not
// answer delays the next audit, it does not stop them.
const auditDeadline = 5 * time.Second

// auditRules notices gateway rules of ours that vanish while their host
// end and bus stay. The kernel sends no notification for can-gw changes,
// so another tool flushing every rule (cangw -F, as Leda's can-forward
// does) would cut every container off for good. Every interval it dumps
// the links and the rules (two netlink dumps, no lock) and asks for a
// reconcile of the buses where a host end of ours has fewer rules than at
// the last count, or none while its bus is there. The reconcile puts back
// exactly the recorded rules; rules that are not ours are never touched.
func (d *Daemon) auditRules(ctx context.Context, every time.Duration) error {
	// Sockets in the poller: closed when ctx ends, which stops a dump
	// that waits, and each round bounded by a deadline.
	lc, err := nl.DialConfig(nl.Config{Poll: true})
	if err != nil {
		return fmt.Errorf("rule audit: %w", err)
	}
	gc, err := nl.DialConfig(nl.Config{Poll: true})
	if err != nil {
		lc.Close()
		return fmt.Errorf("rule audit: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { lc.Close(); gc.Close() })
	defer func() {
		if stop() { // ctx is not done: close them here
			lc.Close()
			gc.Close()
		}
	}()
	links, gw := canlink.NewConn(lc), cangw.NewConn(gc)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	var last map[int]int // host end ifindex -> rules naming it, at the last count
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		deadline := time.Now().Add(auditDeadline)
		lc.SetDeadline(deadline)
		gc.SetDeadline(deadline)
		counts := d.auditOnce(links, gw, last)
		if ctx.Err() != nil {
			return nil // closed under a dump
		}
		last = counts
	}
}

// auditOnce is one audit (see audit) with its outcome counted and, when
// it fails, logged once per change: the failure when it starts or its
// cause changes, a line when it ends (without can-gw every audit fails).
// It returns the new counts, last when it failed.
func (d *Daemon) auditOnce(links *canlink.Conn, gw *cangw.Conn, last map[int]int) map[int]int {
	counts, err := d.audit(links, gw, last)
	d.audited.report(d.log, err, "rule audit failing: rules another tool removes are not put back until it works", "rule audit works again")
	if err != nil {
		d.metrics.ruleAudit(false, err)
		return last
	}
	return counts
}

// audit counts once: it dumps the links and the rules, and asks for a
// reconcile of the buses whose host ends lost rules since last (see
// rulesLost). It returns the new counts.
func (d *Daemon) audit(links *canlink.Conn, gw *cangw.Conn, last map[int]int) (map[int]int, error) {
	all, err := links.Links()
	if err != nil {
		return nil, err
	}
	rules, err := gw.List()
	if err != nil {
		return nil, err
	}
	counts, buses := rulesLost(all, rules, last)
	d.metrics.ruleAudit(len(buses) > 0, nil)
	if len(buses) > 0 {
		d.request("gateway rules gone", attach.Scope{HostBuses: buses})
	}
	return counts, nil
}

// rulesLost counts the rules naming each host end of ours and returns the
// counts and the buses whose host ends lost rules since last or, counted
// for the first time, have none while their bus exists. (A host end that
// stays at zero asks once, not every interval.)
func rulesLost(links []canlink.Link, rules []cangw.Rule, last map[int]int) (map[int]int, []string) {
	busUp := map[string]bool{}
	bus := map[int]string{} // host end ifindex -> its bus
	for _, l := range links {
		busUp[l.Name] = true
		if attach.IsOurs(l) {
			meta, _ := attach.ParseAlias(l.Alias)
			bus[l.Index] = meta.HostBus
		}
	}
	counts := make(map[int]int, len(bus))
	for end := range bus {
		counts[end] = 0 // counted, even without rules
	}
	for _, r := range rules {
		if _, ok := bus[r.Src]; ok {
			counts[r.Src]++
		} else if _, ok := bus[r.Dst]; ok {
			counts[r.Dst]++
		}
	}
	var lost []string
	for end, b := range bus {
		was, seen := last[end]
		if (seen && counts[end] < was) || (!seen && counts[end] == 0 && busUp[b]) {
			if !slices.Contains(lost, b) {
				lost = append(lost, b)
			}
		}
	}
	slices.Sort(lost)
	return counts, lost
}
