package nl

// Watcher receives route netlink notifications (e.g. links appearing and
// going away) of the multicast groups it joined. It waits in the Go
// runtime's network poller: a long-running reader (the daemon) parks no
// thread, and Close wakes a Receive that waits. It is not safe for
// concurrent Receives; Close may come from any goroutine.
type Watcher struct {
	s *polledSocket
}

// Watch opens a socket in the caller's network namespace that receives the
// notifications of groups, a bit mask of RTMGRP_* values.
func Watch(groups uint32) (*Watcher, error) {
	t, err := openSocket(true, groups)
	if err != nil {
		return nil, err
	}
	return &Watcher{s: t.(*polledSocket)}, nil
}

// Receive waits until notifications arrive and returns them. ENOBUFS
// means some were lost (the socket overflowed): the caller should resync.
// After Close, and for a Receive waiting when Close is called, it returns
// ErrClosed.
func (w *Watcher) Receive() ([]Message, error) {
	b, err := w.s.Receive()
	if err != nil {
		return nil, err
	}
	return split(b)
}

// Close closes the socket; a Receive waiting returns ErrClosed.
func (w *Watcher) Close() error { return w.s.Close() }
