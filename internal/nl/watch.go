package nl

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Watcher receives route netlink notifications (e.g. links appearing and
// going away) of the multicast groups it joined.
type Watcher struct {
	fd int
}

// Watch opens a socket in the caller's network namespace that receives the
// notifications of groups, a bit mask of RTMGRP_* values.
func Watch(groups uint32) (*Watcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind to groups %#x: %w", groups, err)
	}
	return &Watcher{fd: fd}, nil
}

// Receive blocks until notifications arrive and returns them. ENOBUFS
// means some were lost (the socket overflowed): the caller should resync.
func (w *Watcher) Receive() ([]Message, error) {
	for {
		size, _, _, _, err := unix.Recvmsg(w.fd, nil, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, _, _, _, err := unix.Recvmsg(w.fd, buf, nil, 0)
		if err != nil {
			return nil, err
		}
		return split(buf[:n])
	}
}

// Close closes the socket; a Receive in progress returns an error.
func (w *Watcher) Close() error { return unix.Close(w.fd) }
