package fakekernel

import (
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// Operational states (IF_OPER_*) the model uses.
const (
	OperUnknown        = 0 // a link that does not say (lo, vcan, a controller)
	OperLowerLayerDown = 3 // a vxcan end without carrier
	OperUp             = 6
)

// The kernel's linkwatch, modelled: a vxcan end whose pair is up gets its
// carrier at once, but becomes operational (and carries frames) only when
// linkwatch has run, asynchronously, which then sends an RTM_NEWLINK to the
// namespace's link watchers. Here linkwatch runs when a watcher of that
// namespace waits (time passes), never while requests are answered: code
// that does not wait sees the ends not yet operational, as a fast caller
// on the real kernel may.

// carrier sets a vxcan end and its peer's state after a change: both up,
// the two go pending (operational once linkwatch runs); else both lose
// their carrier at once.
func (k *Kernel) carrier(l *Link) {
	if l.Kind != "vxcan" {
		return
	}
	pn := k.nss[l.PeerNS]
	if pn == nil {
		return
	}
	p := pn.byIndex(l.PeerIndex)
	if p == nil {
		return
	}
	for _, e := range []*Link{l, p} {
		switch {
		case l.Up && p.Up && e.Oper != OperUp:
			e.pending = true
		case !(l.Up && p.Up):
			e.Oper, e.pending = OperLowerLayerDown, false
		}
	}
}

// HoldLinkwatch keeps the link called name in ns from ever becoming
// operational, as a device that never gets its carrier.
func (k *Kernel) HoldLinkwatch(ns int, name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held == nil {
		k.held = map[int]map[string]bool{}
	}
	if k.held[ns] == nil {
		k.held[ns] = map[string]bool{}
	}
	k.held[ns][name] = true
}

// notify is the nltest.Notifications of the model: it runs linkwatch in
// ns, then returns the notifications recorded there since from.
func (k *Kernel) notify(ns int, groups uint32, from int) ([]nl.Message, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[ns]
	if n == nil {
		return nil, from
	}
	if from < 0 {
		return nil, len(n.notes)
	}
	for _, l := range n.links {
		if l.pending && !k.held[ns][l.Name] {
			l.Oper, l.pending = OperUp, false
			n.note(k.linkMessage(l))
		}
	}
	if groups&unix.RTMGRP_LINK == 0 || from >= len(n.notes) {
		return nil, len(n.notes)
	}
	return n.notes[from:], len(n.notes)
}

// note records a notification of the namespace's link group.
func (n *netns) note(m nl.Message) { n.notes = append(n.notes, m) }
