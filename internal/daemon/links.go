package daemon

import (
	"context"
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/nl"
)

func watchLinks() (*nl.Watcher, error) { return nl.Watch(unix.RTMGRP_LINK) }

// followLinks turns link notifications into reconcile requests:
//   - a CAN bus that appears (a replugged adapter, a reloaded driver, a
//     re-created vcan) or changes its MTU may need its rules back;
//   - a host end of ours that appears may be left half made by a process
//     that dies (the reconcile waits for the records' lock, so it sees the
//     attach finished or its maker dead); one that goes away leaves a
//     record to forget.
func (d *Daemon) followLinks(ctx context.Context, w *nl.Watcher) error {
	go func() { <-ctx.Done(); w.Close() }()
	seen := map[string]busID{}
	for {
		msgs, err := w.Receive()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped notifications: look at everything.
			d.request("missed link events", attach.Scope{Full: true})
			continue
		case err != nil:
			return err
		}
		for _, m := range msgs {
			l, err := canlink.ParseLink(m)
			if err != nil {
				continue
			}
			if d.bridges != nil && m.Header.Type == unix.RTM_NEWLINK && l.IsCAN() {
				d.bridges.BusChanged() // a bridged bus may be back
			}
			if why, scope, ok := linkEvent(seen, m.Header.Type, l); ok {
				d.request(why, scope)
			} else if d.ditto != nil && l.IsCAN() {
				// A bus going up or down, bus-off, a new bitrate: no
				// reconcile, but the features may change.
				d.ditto.Kick()
			}
		}
	}
}

// busID is what a bus keeps while it is the same bus to the daemon: a bus
// going up or down, or changing its bitrate, keeps its rules; one with a
// new ifindex (it came back) or a new MTU (classic or FD) may need them
// back or changed.
type busID struct{ index, mtu int }

// linkEvent is the reconcile a link notification (RTM_NEWLINK or
// RTM_DELLINK about l) asks for, if any. seen holds the buses seen so
// far, by name; linkEvent keeps it up to date.
func linkEvent(seen map[string]busID, typ nl.HeaderType, l canlink.Link) (why string, scope attach.Scope, ok bool) {
	if !l.IsCAN() {
		return "", attach.Scope{}, false
	}
	ours := strings.HasPrefix(l.Name, attach.HostEndPrefix)
	switch {
	case ours && typ == unix.RTM_DELLINK:
		return "host end gone", attach.Scope{HostEnds: []string{l.Name}}, true
	case ours:
		return "host end made", attach.Scope{HostEnds: []string{l.Name}}, true
	case l.Kind == "vxcan":
	case typ == unix.RTM_DELLINK:
		delete(seen, l.Name)
	case seen[l.Name] != busID{l.Index, l.MTU}:
		seen[l.Name] = busID{l.Index, l.MTU}
		return "bus " + l.Name, attach.Scope{HostBuses: []string{l.Name}}, true
	}
	return "", attach.Scope{}, false
}
