package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rcvBuf is each socket's receive buffer: a burst the daemon has not yet
// read waits there (the kernel's default, about 200 KiB, holds some 900
// classic frames).
const rcvBuf = 1 << 20

// canFDMTU is the size of struct canfd_frame, the largest a CAN_RAW socket
// reads (x/sys/unix lacks the constant).
const canFDMTU = 72

// errStopped is a read ended by the bridge's stop signal.
var errStopped = errors.New("bridge stopped")

// canSocket is a CAN_RAW socket that the bridge reads on a goroutine of its
// own with plain system calls, not through Go's network poller: a frame
// then wakes one thread, which goes on with the frame itself (docs/
// benchmarks.md has the poller's figures). While frames are queued a read
// is one recvmsg; when none is, the thread waits in poll on the socket and
// the bridge's stop signal (an eventfd), which a blocking read could not
// be woken by: closing a socket does not wake its reader, and CAN_RAW has
// no shutdown. Idle, it costs nothing.
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
	s, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.CAN_RAW)
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
	if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: int(ifr.Uint32())}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// read reads one frame into buf, waiting for one; errStopped once the
// eventfd stop is signalled.
func (s *canSocket) read(buf, oob []byte, stop int) (int, error) {
	for {
		n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if err == nil {
			s.countDrops(oob[:oobn])
			return n, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return 0, err
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, err
		}
		if fds[1].Revents != 0 {
			return 0, errStopped
		}
	}
}

// countDrops takes the drop count from a frame's control messages.
func (s *canSocket) countDrops(oob []byte) {
	// The only control message asked for: the drop count, sent while it
	// is not zero.
	if data := unix.CmsgLen(0); len(oob) >= data+4 {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL {
			atomic.StoreUint32(&s.drops, binary.NativeEndian.Uint32(oob[data:]))
		}
	}
}

// oobSize is room for the drop count's control message.
var oobSize = unix.CmsgSpace(4)

// write sends a frame. The socket is non-blocking (for read's sake): a
// full send buffer is waited out in poll.
func (s *canSocket) write(frame []byte) error {
	for {
		_, err := unix.Write(s.fd, frame)
		if !errors.Is(err, unix.EAGAIN) {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, 1000); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (s *canSocket) close() error { return unix.Close(s.fd) }
