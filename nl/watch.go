package nl

import (
	"errors"
	"time"
)

// Watcher receives route netlink notifications (e.g. links appearing and
// going away) of the multicast groups it joined. It waits in the Go
// runtime's network poller: a long-running reader (the daemon) parks no
// thread, Close wakes a Receive that waits, and SetDeadline bounds one. It
// is not safe for concurrent Receives; Close may come from any goroutine.
type Watcher struct {
	t Transport
}

// Watch opens a socket in the caller's network namespace that receives the
// notifications of groups, a bit mask of RTMGRP_* values.
func Watch(groups uint32) (*Watcher, error) {
	t, err := openSocket(true, groups)
	if err != nil {
		return nil, err
	}
	return &Watcher{t: t}, nil
}

// Watch opens a Watcher of the same kind as c (socket or stand-in) in c's
// network namespace, for the notifications of groups. A caller that waits
// for what its own request sets off opens it before the request.
func (c *Conn) Watch(groups uint32) (*Watcher, error) {
	t, err := c.t.Watch(groups)
	if err != nil {
		return nil, err
	}
	return &Watcher{t: t}, nil
}

// Receive waits until notifications arrive and returns them. ENOBUFS
// means some were lost (the socket overflowed): the caller should resync.
// After Close, and for a Receive waiting when Close is called, it returns
// ErrClosed; past the deadline, an error wrapping os.ErrDeadlineExceeded.
func (w *Watcher) Receive() ([]Message, error) {
	b, err := w.t.Receive()
	if err != nil {
		return nil, err
	}
	return split(b)
}

// SetDeadline bounds the Receives that wait past t (the zero time: no
// bound).
func (w *Watcher) SetDeadline(t time.Time) error {
	d, ok := w.t.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return errors.New("netlink: this watcher has no deadlines")
	}
	return d.SetDeadline(t)
}

// Close closes the socket; a Receive waiting returns ErrClosed.
func (w *Watcher) Close() error { return w.t.Close() }
