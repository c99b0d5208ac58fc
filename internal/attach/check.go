package attach

import (
	"errors"
	"fmt"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
	"github.com/kanto-can/kanto-can/nl"
)

// Check reports whether the target has every granted bus exactly as an
// Attach of the same grant would leave it: the host end, ours and this
// target's, the interface inside the target's namespace (when t.NS is
// open), each planned gateway rule once and no other rule naming the host
// end. It changes nothing; the error names the first thing missing. Like
// Attach it takes a grant, not a request: what a policy narrowed is what
// must be there.
func (h *Host) Check(t *target.Target, g policy.Granted) error {
	reqs := g.Buses()
	if err := request.CheckSet(reqs); err != nil {
		return err
	}
	var rules []cangw.Rule
	var inside *canlink.Conn
	if t.NS != nil {
		c, err := canlink.DialConfig(nl.Config{NetNS: int(t.NS.Fd())})
		if err != nil {
			return err
		}
		defer c.Close()
		inside = c
	}
	for _, req := range reqs {
		p, err := h.plan(req, t)
		if err != nil {
			return err
		}
		end, err := h.links.LinkByName(p.HostEnd)
		if errors.Is(err, canlink.ErrNotFound) {
			if err := h.checkBridged(t, p, inside); !errors.Is(err, errNotBridged) {
				if err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("bus %s: host end %s is missing", req.Host, p.HostEnd)
		}
		if err != nil {
			return err
		}
		if err := checkExisting(end, t, p); err != nil {
			return err
		}
		if inside != nil {
			l, err := inside.LinkByName(req.Inside)
			if errors.Is(err, canlink.ErrNotFound) {
				return fmt.Errorf("bus %s: interface %s is missing in %s", req.Host, req.Inside, t.Label)
			}
			if err != nil {
				return err
			}
			if l.Kind != "vxcan" {
				return fmt.Errorf("bus %s: interface %s in %s is a %q, not the vxcan kanto-can made", req.Host, req.Inside, t.Label, l.Kind)
			}
		}
		if p.Pending || p.CreateBus {
			continue // no bus, no rules yet
		}
		if rules == nil {
			if rules, err = h.gw.List(); err != nil {
				return err
			}
		}
		if err := checkRules(p, end.Index, rules); err != nil {
			return err
		}
	}
	return nil
}

// checkRules compares the rules naming a host end with the plan's.
func checkRules(p Plan, hostEnd int, current []cangw.Rule) error {
	var have []cangw.Rule
	for _, c := range current {
		if c.Src == hostEnd || c.Dst == hostEnd {
			have = append(have, c)
		}
	}
	used := make([]bool, len(have))
	for _, w := range p.Resolve(hostEnd) {
		found := false
		for j, c := range have {
			if !used[j] && c.Equal(w) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return fmt.Errorf("bus %s: gateway rule %s is missing", p.Request.Host, ruleString(w, hostEnd))
		}
	}
	for j, c := range have {
		if !used[j] {
			return fmt.Errorf("bus %s: gateway rule %s is not in the grant (extra or duplicate)", p.Request.Host, ruleString(c, hostEnd))
		}
	}
	return nil
}

func ruleString(r cangw.Rule, hostEnd int) string {
	dir := "rx"
	if r.Src == hostEnd {
		dir = "tx"
	}
	kind := "classic"
	if r.Flags&cangw.FlagFD != 0 {
		kind = "FD"
	}
	return fmt.Sprintf("%s %s %s", dir, kind, FilterString(r.Filter))
}

// errNotBridged: the bus has no bridged attachment to check.
var errNotBridged = errors.New("not bridged")

// checkBridged checks a bridged attachment: its record grants what the
// request asks, and its vcan, ours, is inside (when inside is open).
func (h *Host) checkBridged(t *target.Target, p Plan, inside *canlink.Conn) error {
	bridged, err := h.existingBridge(t, p)
	if err != nil {
		return err
	}
	if !bridged {
		return errNotBridged
	}
	rec, _, err := record.Get(h.records, p.HostEnd)
	if err != nil {
		return err
	}
	if rec.Bus != p.Request.String() || !sameRate(rec.TxRate, p.Request.TxRate) {
		return fmt.Errorf("bus %s: bridged as %s, not as the grant %s asks", p.Request.Host, rec.Bus, p.Request)
	}
	if inside == nil {
		return nil
	}
	l, err := inside.LinkByName(p.Request.Inside)
	if errors.Is(err, canlink.ErrNotFound) {
		return fmt.Errorf("bus %s: interface %s is missing in %s", p.Request.Host, p.Request.Inside, t.Label)
	}
	if err != nil {
		return err
	}
	if !isOurVCAN(l, t.ID) {
		return fmt.Errorf("bus %s: interface %s in %s is not the vcan kanto-can made", p.Request.Host, p.Request.Inside, t.Label)
	}
	return nil
}

func sameRate(a, b *request.Rate) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}
