package nl

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/netns"
)

// ErrClosed is returned by a Receive or Execute on a socket closed while,
// or before, it waited (sockets that wait in the poller: Watcher, and a
// Conn opened with Config.Poll).
var ErrClosed = errors.New("netlink socket closed")

// dialSocket opens the socket cfg asks for, joined to groups.
func dialSocket(cfg Config, groups uint32) (Transport, error) {
	if cfg.NetNS == 0 {
		return openSocket(cfg.Poll, groups)
	}
	var t Transport
	err := netns.Do(cfg.NetNS, func() (err error) {
		t, err = openSocket(cfg.Poll, groups)
		return err
	})
	return t, err
}

// watchIn opens a Watcher's socket in the namespace of the socket fd (it
// waits in the poller, so that its Receives can have a deadline).
func watchIn(fd int, groups uint32) (Transport, error) {
	ns, err := socketNetNS(fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ns)
	return dialSocket(Config{Poll: true, NetNS: ns}, groups)
}

// openSocket opens a NETLINK_ROUTE socket in the calling thread's
// namespace, joined to the multicast groups given (a bit mask of RTMGRP_*
// values; 0 for a socket that makes requests).
func openSocket(poll bool, groups uint32) (Transport, error) {
	flags := unix.SOCK_RAW | unix.SOCK_CLOEXEC
	if poll {
		flags |= unix.SOCK_NONBLOCK // so os.NewFile registers it with the poller
	}
	fd, err := unix.Socket(unix.AF_NETLINK, flags, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind to groups %#x: %w", groups, err)
	}
	// Ask for the kernel's error messages; older kernels ignore it.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if !poll {
		return &blockingSocket{fd: fd}, nil
	}
	f := os.NewFile(uintptr(fd), "netlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &polledSocket{f: f, rc: rc}, nil
}

// socketNetNS asks the kernel for the socket's namespace (SIOCGSKNS).
func socketNetNS(fd int) (int, error) {
	ns, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		return -1, fmt.Errorf("netlink: the socket's network namespace: %w", err)
	}
	return ns, nil
}

// blockingSocket is the start path's socket. Its system calls do not tell
// the Go scheduler: the kernel handles a route request inside sendmsg and
// the replies are queued by then, so neither call waits for anything; but
// creating interfaces takes the kernel milliseconds under emulation, and a
// scheduler that sees a goroutine "blocked" in a system call that long
// starts another OS thread to take over its processor, which costs more
// than the call. (A reply that is not yet queued would stall this thread
// only.)
type blockingSocket struct{ fd int }

func (s *blockingSocket) Send(b []byte) error {
	var sa unix.RawSockaddrNetlink
	sa.Family = unix.AF_NETLINK
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrNetlink)
	if e != 0 {
		return e
	}
	return nil
}

func (s *blockingSocket) Receive() ([]byte, error) {
	for {
		// Peek at the datagram's size first: a buffer sized for the
		// largest dump would cost more to zero than the whole request.
		size, err := rawRecv(s.fd, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size) // replies keep pointing into it
		n, err := rawRecv(s.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func rawRecv(fd int, buf []byte, flags int) (int, error) {
	var iov unix.Iovec
	if len(buf) > 0 {
		iov.Base = &buf[0]
		iov.SetLen(len(buf))
	}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (s *blockingSocket) NetNS() (int, error) { return socketNetNS(s.fd) }

func (s *blockingSocket) DialNetNS(nsFD int) (Transport, error) {
	return dialSocket(Config{NetNS: nsFD}, 0)
}

func (s *blockingSocket) Watch(groups uint32) (Transport, error) { return watchIn(s.fd, groups) }

func (s *blockingSocket) Close() error { return unix.Close(s.fd) }

// polledSocket waits in the Go runtime's network poller: a long-running
// reader parks no thread, Close wakes a Receive that waits, and reads can
// have a deadline.
type polledSocket struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

func (s *polledSocket) Send(b []byte) error {
	var sendErr error
	err := s.rc.Write(func(fd uintptr) bool {
		sendErr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return sendErr != unix.EAGAIN && sendErr != unix.EINTR
	})
	if err != nil {
		return s.pollErr(err)
	}
	return sendErr
}

func (s *polledSocket) Receive() ([]byte, error) {
	var buf []byte
	var n int
	var recvErr error
	err := s.rc.Read(func(fd uintptr) bool {
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
	if err != nil {
		return nil, s.pollErr(err)
	}
	if recvErr != nil {
		return nil, recvErr
	}
	return buf[:n], nil
}

// pollErr names the poller's "use of closed file" ErrClosed.
func (s *polledSocket) pollErr(err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return err
}

func (s *polledSocket) NetNS() (int, error) {
	ns, ctlErr := -1, error(nil)
	if err := s.rc.Control(func(fd uintptr) { ns, ctlErr = socketNetNS(int(fd)) }); err != nil {
		return -1, s.pollErr(err)
	}
	return ns, ctlErr
}

func (s *polledSocket) DialNetNS(nsFD int) (Transport, error) {
	return dialSocket(Config{Poll: true, NetNS: nsFD}, 0)
}

func (s *polledSocket) Watch(groups uint32) (Transport, error) {
	var t Transport
	var watchErr error
	if err := s.rc.Control(func(fd uintptr) { t, watchErr = watchIn(int(fd), groups) }); err != nil {
		return nil, s.pollErr(err)
	}
	return t, watchErr
}

func (s *polledSocket) SetDeadline(t time.Time) error { return s.f.SetDeadline(t) }

func (s *polledSocket) Close() error {
	s.closed.Store(true)
	return s.f.Close()
}
