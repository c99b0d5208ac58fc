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
	// The buses seen, by name: a bus going up or down, or changing its
	// bitrate, keeps its rules; one with a new ifindex (it came back) or a
	// new MTU (classic or FD) may need them back or changed.
	type busID struct{ index, mtu int }
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
			if err != nil || !l.IsCAN() {
				continue
			}
			ours := strings.HasPrefix(l.Name, attach.HostEndPrefix)
			switch {
			case ours && m.Header.Type == unix.RTM_DELLINK:
				d.request("host end gone", attach.Scope{HostEnds: []string{l.Name}})
			case ours:
				d.request("host end made", attach.Scope{HostEnds: []string{l.Name}})
			case l.Kind == "vxcan":
			case m.Header.Type == unix.RTM_DELLINK:
				delete(seen, l.Name)
			case seen[l.Name] != busID{l.Index, l.MTU}:
				seen[l.Name] = busID{l.Index, l.MTU}
				d.request("bus "+l.Name, attach.Scope{Buses: []string{l.Name}})
			}
		}
	}
}
