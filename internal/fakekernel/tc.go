package fakekernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// Traffic control as package ratelimit uses it: an ingress qdisc, one
// matchall filter in it, with one police action of a packet rate.
const (
	tcmsgLen     = 20
	tcHIngress   = 0xfffffff1 // TC_H_INGRESS
	filterParent = 0xfffffff2 // ffff:fff2, tc's "ingress" for filters
	tcaKind      = 1
	tcaOptions   = 2
	matchallAct  = 2 // TCA_MATCHALL_ACT
	actTab       = 1 // TCA_ACT_TAB
	actKind      = 1
	actOptions   = 2
	actStats     = 4
	policeTBF    = 1
	pktRate64    = 10
	pktBurst64   = 11
	statsBasic   = 1
	statsQueue   = 3
	policeTBFLen = 56
)

type qdisc struct {
	filter *tcFilter // the matchall filter, if any
}

type tcFilter struct {
	prio, handle uint32
	protocol     uint16 // as in tcm_info: network byte order
	action       uint32 // the police action's index
}

type police struct {
	index          uint32
	tbf            []byte
	rate, burst    uint64
	packets, drops uint64
}

type tcmsg struct {
	ifindex              int
	handle, parent, info uint32
}

func parseTcmsg(b []byte) (tcmsg, *nl.AttributeDecoder, error) {
	if len(b) < tcmsgLen {
		return tcmsg{}, nil, unix.EINVAL
	}
	m := tcmsg{
		ifindex: int(int32(ne.Uint32(b[4:]))),
		handle:  ne.Uint32(b[8:]),
		parent:  ne.Uint32(b[12:]),
		info:    ne.Uint32(b[16:]),
	}
	ad, err := nl.NewAttributeDecoder(b[tcmsgLen:])
	if err != nil {
		return m, nil, unix.EINVAL
	}
	return m, ad, nil
}

func kindOf(ad *nl.AttributeDecoder) (kind string, opts []byte) {
	for ad.Next() {
		switch ad.Type() {
		case tcaKind:
			kind = ad.String()
		case tcaOptions:
			opts = ad.Bytes()
		}
	}
	return kind, opts
}

// newQdisc adds an ingress qdisc (NLM_F_EXCL: EEXIST when there is one).
func (n *netns) newQdisc(req nl.Message) (string, error) {
	m, ad, err := parseTcmsg(req.Data)
	if err != nil {
		return "", err
	}
	kind, _ := kindOf(ad)
	summary := fmt.Sprintf("%s on %d", kind, m.ifindex)
	if kind != "ingress" || m.parent != tcHIngress {
		return summary, notModelled("qdisc %q at parent %#x", kind, m.parent)
	}
	if n.byIndex(m.ifindex) == nil {
		return summary, unix.ENODEV
	}
	if n.ingress[m.ifindex] != nil {
		return summary, unix.EEXIST
	}
	n.ingress[m.ifindex] = &qdisc{}
	return summary, nil
}

// delQdisc deletes the ingress qdisc with its filter and their action.
func (n *netns) delQdisc(req nl.Message) (string, error) {
	m, _, err := parseTcmsg(req.Data)
	if err != nil {
		return "", err
	}
	summary := fmt.Sprintf("ingress on %d", m.ifindex)
	if m.parent != tcHIngress {
		return summary, notModelled("qdisc at parent %#x", m.parent)
	}
	if n.byIndex(m.ifindex) == nil {
		return summary, unix.ENODEV
	}
	if n.ingress[m.ifindex] == nil {
		return summary, unix.ENOENT
	}
	n.dropIngress(m.ifindex)
	return summary, nil
}

func (n *netns) dropIngress(ifindex int) {
	if q := n.ingress[ifindex]; q != nil && q.filter != nil {
		delete(n.actions, q.filter.action)
	}
	delete(n.ingress, ifindex)
}

// newFilter adds the matchall filter with a new police action.
func (k *Kernel) newFilter(n *netns, req nl.Message) (string, error) {
	m, ad, err := parseTcmsg(req.Data)
	if err != nil {
		return "", err
	}
	kind, opts := kindOf(ad)
	summary := fmt.Sprintf("%s on %d", kind, m.ifindex)
	if kind != "matchall" || m.parent != filterParent {
		return summary, notModelled("filter %q at parent %#x", kind, m.parent)
	}
	if n.byIndex(m.ifindex) == nil {
		return summary, unix.ENODEV
	}
	q := n.ingress[m.ifindex]
	if q == nil {
		return summary, unix.EINVAL // "Parent Qdisc doesn't exists"
	}
	f := &tcFilter{prio: m.info >> 16, handle: m.handle, protocol: uint16(m.info)}
	if q.filter != nil && q.filter.prio == f.prio {
		// One matchall per priority here; cls_matchall has one filter.
		return summary, unix.EEXIST
	}
	var acts []byte
	oad, err := nl.NewAttributeDecoder(opts)
	if err != nil {
		return summary, unix.EINVAL
	}
	for oad.Next() {
		if oad.Type() == matchallAct {
			acts = oad.Bytes()
		}
	}
	p, err := parseFirstPolice(acts)
	if err != nil {
		return summary, err
	}
	k.next++
	p.index = k.next
	n.actions[p.index] = p
	f.action = p.index
	q.filter = f
	return fmt.Sprintf("%s, police %d/s", summary, p.rate), nil
}

// replaceAction changes a police action in place (NLM_F_REPLACE), or
// makes a new one (NLM_F_CREATE) when no action has its index.
func (k *Kernel) replaceAction(n *netns, req nl.Message) (string, error) {
	if len(req.Data) < 4 {
		return "", unix.EINVAL
	}
	ad, err := nl.NewAttributeDecoder(req.Data[4:])
	if err != nil {
		return "", unix.EINVAL
	}
	var tab []byte
	for ad.Next() {
		if ad.Type() == actTab {
			tab = ad.Bytes()
		}
	}
	p, err := parseFirstPolice(tab)
	if err != nil {
		return "", err
	}
	summary := fmt.Sprintf("police %d: %d/s", p.index, p.rate)
	old := n.actions[p.index]
	switch {
	case old != nil && req.Header.Flags&nl.Replace == 0:
		return summary, unix.EEXIST
	case old != nil:
		old.tbf, old.rate, old.burst = p.tbf, p.rate, p.burst
	case req.Header.Flags&nl.Create == 0:
		return summary, unix.ENOENT
	default:
		if p.index == 0 {
			k.next++
			p.index = k.next
		}
		n.actions[p.index] = p
	}
	return summary, nil
}

// parseFirstPolice reads item 1 of an action list: a police action with a
// packet rate, as act_police requires it (TCA_POLICE_TBF always, the
// packet rate and burst together, a byte rate of zero).
func parseFirstPolice(list []byte) (*police, error) {
	ad, err := nl.NewAttributeDecoder(list)
	if err != nil || !ad.Next() {
		return nil, unix.EINVAL
	}
	item, err := nl.NewAttributeDecoder(ad.Bytes())
	if err != nil {
		return nil, unix.EINVAL
	}
	var kind string
	var opts []byte
	for item.Next() {
		switch item.Type() {
		case actKind:
			kind = item.String()
		case actOptions:
			opts = item.Bytes()
		}
	}
	if kind != "police" {
		return nil, notModelled("action %q", kind)
	}
	p := &police{}
	var hasRate, hasBurst bool
	pad, err := nl.NewAttributeDecoder(opts)
	if err != nil {
		return nil, unix.EINVAL
	}
	for pad.Next() {
		b := pad.Bytes()
		switch pad.Type() {
		case policeTBF:
			if len(b) < policeTBFLen {
				return nil, unix.EINVAL
			}
			p.tbf = append([]byte(nil), b...)
			p.index = ne.Uint32(b[0:])
		case pktRate64:
			if len(b) != 8 {
				return nil, unix.EINVAL
			}
			p.rate, hasRate = ne.Uint64(b), true
		case pktBurst64:
			if len(b) != 8 {
				return nil, unix.EINVAL
			}
			p.burst, hasBurst = ne.Uint64(b), true
		}
	}
	if p.tbf == nil || hasRate != hasBurst || !hasRate || p.rate == 0 || p.burst == 0 {
		return nil, unix.EINVAL
	}
	if ne.Uint32(p.tbf[28:]) != 0 { // rate.rate, the byte rate, exclusive with a packet rate
		return nil, unix.EINVAL
	}
	return p, nil
}

// listFilters dumps the ingress filters of one interface: none for an
// interface without an ingress qdisc, or that does not exist.
func (k *Kernel) listFilters(n *netns, req nl.Message) ([]nl.Message, error) {
	m, _, err := parseTcmsg(req.Data)
	if err != nil {
		return nil, err
	}
	q := n.ingress[m.ifindex]
	if req.Header.Flags&nl.Dump != nl.Dump || q == nil || q.filter == nil {
		return nil, nil
	}
	f, p := q.filter, n.actions[q.filter.action]
	ae := nl.NewAttributeEncoder()
	ae.String(tcaKind, "matchall")
	ae.Nested(tcaOptions, func(ae *nl.AttributeEncoder) error {
		ae.Nested(matchallAct, func(ae *nl.AttributeEncoder) error {
			ae.Nested(1, func(ae *nl.AttributeEncoder) error {
				ae.String(actKind, "police")
				ae.Nested(actOptions, func(ae *nl.AttributeEncoder) error {
					tbf := append([]byte(nil), p.tbf...)
					ne.PutUint32(tbf[0:], p.index)
					ae.Bytes(policeTBF, tbf)
					ae.Bytes(pktRate64, ne.AppendUint64(nil, p.rate))
					ae.Bytes(pktBurst64, ne.AppendUint64(nil, p.burst))
					return nil
				})
				ae.Nested(actStats, func(ae *nl.AttributeEncoder) error {
					basic := make([]byte, 16) // struct gnet_stats_basic, padded
					ne.PutUint32(basic[8:], uint32(p.packets))
					ae.Bytes(statsBasic, basic)
					queue := make([]byte, 20) // struct gnet_stats_queue
					ne.PutUint32(queue[8:], uint32(p.drops))
					ae.Bytes(statsQueue, queue)
					return nil
				})
				return nil
			})
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	b := make([]byte, tcmsgLen)
	ne.PutUint32(b[4:], uint32(m.ifindex))
	ne.PutUint32(b[8:], f.handle)
	ne.PutUint32(b[12:], filterParent)
	ne.PutUint32(b[16:], f.prio<<16|uint32(f.protocol))
	return []nl.Message{{Header: nl.Header{Type: unix.RTM_NEWTFILTER}, Data: append(b, attrs...)}}, nil
}

// Limit returns the police action's rate and burst (in the kernel's
// ticks) on interface ifindex of ns; false when it has no filter.
func (k *Kernel) Limit(ns, ifindex int) (rate, burstTicks uint64, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[ns]
	if n == nil || n.ingress[ifindex] == nil || n.ingress[ifindex].filter == nil {
		return 0, 0, false
	}
	p := n.actions[n.ingress[ifindex].filter.action]
	return p.rate, p.burst, true
}
