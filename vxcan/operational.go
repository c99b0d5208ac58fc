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
// RTM_NEWLINK it sends after that is what endWatch waits for: a frame sent
// once it arrived is carried. (linkwatch sets the state and activates the
// queues under the RTNL lock and notifies after both.)

// endWatch waits for one end of a new pair to be operational.
type endWatch struct {
	w     *nl.Watcher   // link notifications of the end's namespace, joined before the end could come up
	links *canlink.Conn // the end's namespace, to read the end itself after lost notifications
	index int           // the end's ifindex there
	state canlink.OperState
}

// await waits until the end is operationally up, it is removed or the
// deadline passes.
func (e *endWatch) await(deadline time.Time) error {
	if err := e.w.SetDeadline(deadline); err != nil {
		return err
	}
	for {
		msgs, err := e.w.Receive()
		switch {
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost (a busy namespace): read the end.
			l, err := e.links.LinkByIndex(e.index)
			if err != nil {
				return err
			}
			if e.state = l.OperState; e.state == canlink.OperUp {
				return nil
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if l, err := e.links.LinkByIndex(e.index); err == nil {
				e.state = l.OperState // for the message: what it is now
			}
			return fmt.Errorf("%w (operstate %s)", ErrNotOperational, e.state)
		case err != nil:
			return fmt.Errorf("wait for link notifications: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
				continue
			}
			l, err := canlink.ParseLink(m)
			if err != nil || l.Index != e.index {
				continue
			}
			if m.Header.Type == unix.RTM_DELLINK {
				return fmt.Errorf("%w: removed while coming up", ErrNotOperational)
			}
			if e.state = l.OperState; e.state == canlink.OperUp {
				return nil
			}
		}
	}
}
