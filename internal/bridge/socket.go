package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rcvBuf is each socket's receive buffer: a burst the daemon has not yet
// read waits there (the kernel's default, about 200 KiB, holds some 900
// classic frames).
const rcvBuf = 1 << 20

// wakeEvery bounds a read's wait, so that a reader notices Close: a
// blocking read on a socket is not woken by closing it, and CAN_RAW has no
// shutdown.
const wakeEvery = 100 * time.Millisecond

// canFDMTU is the size of struct canfd_frame, the largest a CAN_RAW socket
// reads (x/sys/unix lacks the constant).
const canFDMTU = 72

// errWake is a read that timed out (wakeEvery) without a frame.
var errWake = errors.New("no frame yet")

// canSocket is a blocking CAN_RAW socket. The bridge reads each on a
// goroutine of its own with plain system calls, not through Go's network
// poller: a frame then wakes one thread, which goes on with the frame
// itself, instead of the poller handing a ready goroutine to a scheduler
// thread (under emulation that hand-off alone cost more than the frame's
// whole trip through the kernel: docs/benchmarks.md).
type canSocket struct {
	fd int
	// drops is the kernel's count of frames this socket's full receive
	// buffer dropped (SO_RXQ_OVFL), as of the last frame read.
	drops uint32
}

// openCAN opens a CAN_RAW socket bound to the interface ifname of the
// calling thread's network namespace. fd lets CAN FD frames through.
// filters is what the socket receives: nil every frame, empty none.
func openCAN(ifname string, fd bool, filters []unix.CanFilter) (*canSocket, error) {
	s, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, fmt.Errorf("CAN_RAW socket: %w", err)
	}
	if err := setupCAN(s, ifname, fd, filters); err != nil {
		unix.Close(s)
		return nil, fmt.Errorf("%s: %w", ifname, err)
	}
	return &canSocket{fd: s}, nil
}

func setupCAN(s int, ifname string, fd bool, filters []unix.CanFilter) error {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return fmt.Errorf("interface index: %w", err)
	}
	if fd {
		if err := unix.SetsockoptInt(s, unix.SOL_CAN_RAW, unix.CAN_RAW_FD_FRAMES, 1); err != nil {
			return fmt.Errorf("CAN_RAW_FD_FRAMES: %w", err)
		}
	}
	if filters != nil {
		if err := unix.SetsockoptCanRawFilter(s, unix.SOL_CAN_RAW, unix.CAN_RAW_FILTER, filters); err != nil {
			return fmt.Errorf("CAN_RAW_FILTER (%d filters): %w", len(filters), err)
		}
	}
	// Beyond rmem_max needs CAP_NET_ADMIN, which the daemon has.
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		return fmt.Errorf("SO_RXQ_OVFL: %w", err)
	}
	tv := unix.NsecToTimeval(wakeEvery.Nanoseconds())
	if err := unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: int(ifr.Uint32())}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// read reads one frame into buf; errWake when none came within wakeEvery.
func (s *canSocket) read(buf, oob []byte) (int, error) {
	n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, 0)
	switch {
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return 0, errWake
	case err != nil:
		return 0, err
	}
	// The only control message asked for: the drop count, sent while it
	// is not zero.
	if data := unix.CmsgLen(0); oobn >= data+4 {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL {
			atomic.StoreUint32(&s.drops, binary.NativeEndian.Uint32(oob[data:]))
		}
	}
	return n, nil
}

// oobSize is room for the drop count's control message.
var oobSize = unix.CmsgSpace(4)

func (s *canSocket) write(frame []byte) error {
	_, err := unix.Write(s.fd, frame)
	return err
}

func (s *canSocket) close() error { return unix.Close(s.fd) }
