package nl

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Watcher receives route netlink notifications (e.g. links appearing and
// going away) of the multicast groups it joined. Unlike Conn, made for the
// start path, it waits in the Go runtime's network poller: a long-running
// reader (the daemon) parks no thread, and Close wakes a Receive that
// waits.
type Watcher struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

// Watch opens a socket in the caller's network namespace that receives the
// notifications of groups, a bit mask of RTMGRP_* values.
func Watch(groups uint32) (*Watcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind to groups %#x: %w", groups, err)
	}
	// Non-blocking, so os.NewFile registers it with the poller.
	f := os.NewFile(uintptr(fd), "netlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &Watcher{f: f, rc: rc}, nil
}

// ErrClosed is returned by Receive once the Watcher is closed.
var ErrClosed = errors.New("netlink watcher closed")

// Receive waits until notifications arrive and returns them. ENOBUFS
// means some were lost (the socket overflowed): the caller should resync.
// After Close, and for a Receive waiting when Close is called, it returns
// ErrClosed.
func (w *Watcher) Receive() ([]Message, error) {
	var buf []byte
	var n int
	var recvErr error
	err := w.rc.Read(func(fd uintptr) bool {
		// Peek at the size, then read the datagram whole.
		var size int
		size, _, _, _, recvErr = unix.Recvmsg(int(fd), nil, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if recvErr == unix.EAGAIN || recvErr == unix.EINTR {
			return false // wait in the poller
		}
		if recvErr != nil {
			return true
		}
		buf = make([]byte, size)
		n, _, _, _, recvErr = unix.Recvmsg(int(fd), buf, nil, 0)
		return recvErr != unix.EAGAIN && recvErr != unix.EINTR
	})
	if err != nil && w.closed.Load() {
		return nil, ErrClosed // the poller's "use of closed file"
	}
	if err != nil {
		return nil, err
	}
	if recvErr != nil {
		return nil, recvErr
	}
	return split(buf[:n])
}

// Close closes the socket; a Receive waiting returns ErrClosed.
func (w *Watcher) Close() error {
	w.closed.Store(true)
	return w.f.Close()
}
