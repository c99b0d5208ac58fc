package fakekernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/nl"
)

// MaxHops is the can-gw module's max_hops parameter (its default).
const MaxHops = 1

// parseRule decodes an RTM_NEWROUTE or RTM_DELROUTE of can-gw; a request
// has the layout of a dump's message, so cangw.Rule decodes it.
func parseRule(req nl.Message) (cangw.Rule, error) {
	var r cangw.Rule
	if err := r.UnmarshalBinary(req.Data); err != nil {
		return r, unix.EINVAL
	}
	if r.UID != 0 || len(r.Mods) > 0 || r.XOR != nil || r.CRC8 != nil {
		return r, notModelled("can-gw modifications, checksums and uids")
	}
	r.Handled, r.Dropped, r.Deleted = 0, 0, 0
	return r, nil
}

// addRule is cgw_create_job: both interfaces must exist in the namespace
// and be CAN interfaces (ENODEV), the hop limit within max_hops and src ==
// dst only with IIF_TX_OK (EINVAL). There is no duplicate check; a new
// rule goes first (hlist_add_head).
func (n *netns) addRule(req nl.Message) (string, error) {
	r, err := parseRule(req)
	if err != nil {
		return "", err
	}
	summary := RuleString(r)
	for _, idx := range []int{r.Src, r.Dst} {
		if l := n.byIndex(idx); idx == 0 || l == nil || l.Type != ARPHRDCAN {
			return summary, unix.ENODEV
		}
	}
	if r.HopLimit > MaxHops || (r.Src == r.Dst && r.Flags&cangw.FlagIIFTXOK == 0) {
		return summary, unix.EINVAL
	}
	n.rules = append([]cangw.Rule{r}, n.rules...)
	return summary, nil
}

// delRule is cgw_remove_job: both indexes 0 flush the namespace's rules,
// else the first rule that matches exactly goes; none matching is EINVAL.
func (n *netns) delRule(req nl.Message) (string, error) {
	r, err := parseRule(req)
	if err != nil {
		return "", err
	}
	if r.Src == 0 && r.Dst == 0 {
		n.rules = nil
		return "flush", nil
	}
	for i, o := range n.rules {
		if o.Equal(r) {
			n.rules = append(n.rules[:i:i], n.rules[i+1:]...)
			return RuleString(r), nil
		}
	}
	return RuleString(r), unix.EINVAL
}

// listRules is cgw_dump_jobs: every rule, newest first, with counters.
func (k *Kernel) listRules(n *netns, req nl.Message) ([]nl.Message, error) {
	if req.Header.Flags&nl.Dump != nl.Dump {
		return nil, notModelled("RTM_GETROUTE without a dump")
	}
	if len(req.Data) < 1 || req.Data[0] != unix.AF_CAN {
		return nil, notModelled("route dumps of family %v", req.Data)
	}
	out := make([]nl.Message, 0, len(n.rules))
	for _, r := range n.rules {
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("fakekernel: a stored rule does not encode: %w", err)
		}
		out = append(out, nl.Message{Header: nl.Header{Type: unix.RTM_NEWROUTE}, Data: b})
	}
	return out, nil
}

// AddRule adds a rule to namespace ns as another tool would (cangw -A),
// with the kernel's checks.
func (k *Kernel) AddRule(ns int, r cangw.Rule) error {
	b, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[ns]
	if n == nil {
		return fmt.Errorf("fakekernel: no namespace %d", ns)
	}
	_, err = n.addRule(nl.Message{Header: nl.Header{Type: unix.RTM_NEWROUTE}, Data: b})
	return err
}

// Flush deletes every rule of namespace ns, as cangw -F does.
func (k *Kernel) Flush(ns int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nss[ns]; n != nil {
		n.rules = nil
	}
}

// Rules returns the rules of namespace ns, newest first.
func (k *Kernel) Rules(ns int) []cangw.Rule {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nss[ns]; n != nil {
		return append([]cangw.Rule(nil), n.rules...)
	}
	return nil
}
