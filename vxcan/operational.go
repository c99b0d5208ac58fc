package vxcan

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/nl"
)

// DefaultUpTimeout bounds how long Create waits for a new pair to carry
// frames when Pair.UpTimeout is 0. The kernel takes microseconds; the bound
// is for a device that never comes up.
const DefaultUpTimeout = 5 * time.Second

var (
	// ErrNotOperational is wrapped by Create's error when an end of the new
	// pair did not come operationally up in time (the pair is deleted).
	ErrNotOperational = errors.New("not operational")
	// ErrNoVXCAN is wrapped by Create's error when the kernel does not know
	// the link kind vxcan.
	ErrNoVXCAN = errors.New("the kernel has no vxcan (modprobe vxcan; CONFIG_CAN_VXCAN)")
)

// A vxcan pair with both ends up is not yet carrying frames: bringing the
// second end up turns the carrier on, and the kernel's linkwatch work then,
// asynchronously, sets the operational state to up and activates the
// queueing discipline, which until then (noop) drops every frame sent. The
// RTM_NEWLINK it sends after that is what linkWatch waits for: a frame sent
// once it arrived is carried. (linkwatch sets the state and activates the
// queues under the RTNL lock and notifies after both.)

// linkWatch waits for the ends of a new pair in one namespace to be
// operational. It keeps what each notification said of every link, so that
// one watch serves both ends of a pair made within one namespace.
type linkWatch struct {
	w     *nl.Watcher   // link notifications of the namespace, joined before an end could come up
	links *canlink.Conn // the namespace, to read an end itself after lost notifications
	seen  map[int]canlink.OperState
}

func newLinkWatch(w *nl.Watcher, links *canlink.Conn) *linkWatch {
	return &linkWatch{w: w, links: links, seen: map[int]canlink.OperState{}}
}

// await waits until the link index is operationally up, it is removed or
// the deadline passes.
func (lw *linkWatch) await(index int, deadline time.Time) error {
	if lw.seen[index] == canlink.OperUp {
		return nil
	}
	if err := lw.w.SetDeadline(deadline); err != nil {
		return err
	}
	for {
		msgs, err := lw.w.Receive()
		switch {
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost (a busy namespace): read the end.
			l, err := lw.links.LinkByIndex(index)
			if err != nil {
				return err
			}
			if lw.seen[index] = l.OperState; l.OperState == canlink.OperUp {
				return nil
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if l, err := lw.links.LinkByIndex(index); err == nil {
				lw.seen[index] = l.OperState // for the message: what it is now
			}
			return fmt.Errorf("%w (operstate %s)", ErrNotOperational, lw.seen[index])
		case err != nil:
			return fmt.Errorf("wait for link notifications: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
				continue
			}
			l, err := canlink.ParseLink(m)
			if err != nil {
				continue
			}
			if m.Header.Type == unix.RTM_DELLINK {
				if l.Index == index {
					return fmt.Errorf("%w: removed while coming up", ErrNotOperational)
				}
				continue
			}
			lw.seen[l.Index] = l.OperState
		}
		if lw.seen[index] == canlink.OperUp {
			return nil
		}
	}
}
