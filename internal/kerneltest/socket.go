package kerneltest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel constants golang.org/x/sys/unix does not define.
const (
	canRawFDFrames = 5  // CAN_RAW_FD_FRAMES
	canfdMTU       = 72 // CANFD_MTU
	canfdBRS       = 0x01
	canfdESI       = 0x02
)

// Frame is a CAN or CAN FD frame.
type Frame struct {
	ID       uint32 // 11-bit, or 29-bit if Extended
	Extended bool
	// RTR marks a remote request (Classic CAN only). It carries no data:
	// len(Data) is its DLC, the bytes themselves are ignored.
	RTR bool
	FD  bool
	// BRS and ESI are CAN FD flags (bit rate switch, error state indicator).
	BRS, ESI bool
	Data     []byte
}

// String formats the frame like candump -L and cansend: 123#1122,
// 12345678#, 123#R, 123##0112233 (FD: the digit after ## holds the flags).
func (f Frame) String() string {
	var b strings.Builder
	if f.Extended {
		fmt.Fprintf(&b, "%08X", f.ID&unix.CAN_EFF_MASK)
	} else {
		fmt.Fprintf(&b, "%03X", f.ID&unix.CAN_SFF_MASK)
	}
	switch {
	case f.FD:
		flags := 0
		if f.BRS {
			flags |= canfdBRS
		}
		if f.ESI {
			flags |= canfdESI
		}
		fmt.Fprintf(&b, "##%X%X", flags, f.Data)
	case f.RTR:
		b.WriteString("#R")
		if n := len(f.Data); n > 0 && n <= 8 {
			fmt.Fprintf(&b, "%X", n)
		}
	default:
		fmt.Fprintf(&b, "#%X", f.Data)
	}
	return b.String()
}

// Equal reports whether two frames are the same on the wire.
func (f Frame) Equal(g Frame) bool { return f.String() == g.String() }

// marshal encodes the frame as struct can_frame or struct canfd_frame.
func (f Frame) marshal() ([]byte, error) {
	id := f.ID
	if f.Extended {
		if id > unix.CAN_EFF_MASK {
			return nil, fmt.Errorf("extended id %#x out of range", id)
		}
		id |= unix.CAN_EFF_FLAG
	} else if id > unix.CAN_SFF_MASK {
		return nil, fmt.Errorf("standard id %#x out of range (set Extended?)", id)
	}
	if f.FD {
		if f.RTR {
			return nil, errors.New("CAN FD has no remote frames")
		}
		if !validFDLen(len(f.Data)) {
			return nil, fmt.Errorf("CAN FD length %d is not a valid DLC length", len(f.Data))
		}
		buf := make([]byte, canfdMTU)
		binary.NativeEndian.PutUint32(buf, id)
		buf[4] = byte(len(f.Data))
		if f.BRS {
			buf[5] |= canfdBRS
		}
		if f.ESI {
			buf[5] |= canfdESI
		}
		copy(buf[8:], f.Data)
		return buf, nil
	}
	if len(f.Data) > 8 {
		return nil, fmt.Errorf("classic CAN carries at most 8 bytes, not %d", len(f.Data))
	}
	buf := make([]byte, unix.CAN_MTU)
	if f.RTR {
		id |= unix.CAN_RTR_FLAG
	} else {
		copy(buf[8:], f.Data)
	}
	binary.NativeEndian.PutUint32(buf, id)
	buf[4] = byte(len(f.Data))
	return buf, nil
}

func validFDLen(n int) bool {
	switch n {
	case 0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64:
		return true
	}
	return false
}

// unmarshal decodes what a CAN_RAW socket returned from one read.
func unmarshal(buf []byte) (Frame, error) {
	if len(buf) != unix.CAN_MTU && len(buf) != canfdMTU {
		return Frame{}, fmt.Errorf("read %d bytes, not a CAN frame", len(buf))
	}
	id := binary.NativeEndian.Uint32(buf)
	n := int(buf[4])
	f := Frame{Extended: id&unix.CAN_EFF_FLAG != 0, FD: len(buf) == canfdMTU}
	if f.Extended {
		f.ID = id & unix.CAN_EFF_MASK
	} else {
		f.ID = id & unix.CAN_SFF_MASK
	}
	if f.FD {
		f.BRS = buf[5]&canfdBRS != 0
		f.ESI = buf[5]&canfdESI != 0
		n = min(n, 64)
	} else {
		f.RTR = id&unix.CAN_RTR_FLAG != 0
		n = min(n, 8)
	}
	f.Data = make([]byte, n)
	if !f.RTR {
		copy(f.Data, buf[8:8+n])
	}
	return f, nil
}

// Socket is a raw CAN socket bound to one interface, with CAN FD frames
// enabled. It receives what other sockets send on the interface, and what
// arrives on it; not its own frames.
type Socket struct {
	fd     int
	ifname string
	// hw: the interface is a CAN controller (link kind "can"): in the test
	// VM, QEMU's emulated SJA1000 (see [Kvaser]).
	hw bool
}

// ErrTimeout is returned by [Socket.Recv] when no frame arrived in time.
var ErrTimeout = errors.New("timeout waiting for a CAN frame")

// Open opens a raw CAN socket (CAN_RAW_FD_FRAMES on) bound to ifname inside
// ns (nil: the test's own namespace), closed at cleanup. The socket stays in
// the namespace it was opened in.
func Open(tb testing.TB, ns *NS, ifname string) *Socket {
	tb.Helper()
	Require(tb)
	s := &Socket{fd: -1, ifname: ifname}
	ns.Do(tb, func() {
		h := routeHandle(tb)
		link, err := h.LinkByName(ifname)
		h.Close()
		if err != nil {
			tb.Fatalf("CAN socket: interface %s: %v", ifname, err)
		}
		s.hw = link.Type() == "can"
		s.bind(tb, link.Attrs().Index)
	})
	return s
}

// bind opens the socket in the calling thread's namespace, FD frames on,
// bound to ifindex (0: every interface), closed at cleanup.
func (s *Socket) bind(tb testing.TB, ifindex int) {
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		tb.Fatalf("CAN socket: %v", err)
	}
	s.fd = fd
	tb.Cleanup(s.Close)
	if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, canRawFDFrames, 1); err != nil {
		tb.Fatalf("CAN socket: enable FD frames: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifindex}); err != nil {
		tb.Fatalf("CAN socket: bind to %s: %v", s.ifname, err)
	}
}

// Close closes the socket early (it is closed at cleanup anyway).
func (s *Socket) Close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// Fd is the socket's file descriptor, e.g. to set filters with setsockopt.
func (s *Socket) Fd() int { return s.fd }

// Send sends one frame; it fails the test if the kernel refuses it (e.g. an
// FD frame on a Classic CAN interface).
func (s *Socket) Send(tb testing.TB, f Frame) {
	tb.Helper()
	buf, err := f.marshal()
	if err != nil {
		tb.Fatalf("send %s on %s: %v", f, s.ifname, err)
	}
	if s.hw && f.RTR && len(f.Data) > 0 {
		tb.Fatalf("send %s on %s: remote frames with a DLC break QEMU's emulated SJA1000 "+
			"(every later frame it receives is garbage until the VM reboots); use DLC 0", f, s.ifname)
	}
	for {
		n, err := unix.Write(s.fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			tb.Fatalf("send %s on %s: %v", f, s.ifname, err)
		}
		if n != len(buf) {
			tb.Fatalf("send %s on %s: short write %d of %d", f, s.ifname, n, len(buf))
		}
		return
	}
}

// Recv waits up to timeout for the next frame. It returns [ErrTimeout] if
// none came.
func (s *Socket) Recv(timeout time.Duration) (Frame, error) {
	f, _, err := s.RecvFrom(timeout)
	return f, err
}

// Expect receives exactly the wanted frames, in order, within timeout in all.
// Any other frame before the last wanted one fails the test. Frames after it
// are left in the socket.
func (s *Socket) Expect(tb testing.TB, want []Frame, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var got []Frame
	for i, w := range want {
		f, err := s.Recv(time.Until(deadline))
		if err != nil {
			tb.Fatalf("%s: frame %d of %d: %v\nwant: %s\ngot:  %s", s.ifname, i+1, len(want), err,
				frameList(want), frameList(got))
		}
		got = append(got, f)
		if !f.Equal(w) {
			tb.Fatalf("%s: frame %d of %d is %s, want %s\nwant: %s\ngot:  %s", s.ifname, i+1, len(want), f, w,
				frameList(want), frameList(got))
		}
	}
}

// ExpectOnlyUntil reads frames until marker arrives and fails the test unless
// exactly want (in order, possibly none) arrived before it. This asserts that
// other frames did not arrive, without sleeping: send the frames that must be
// blocked, then the marker along the same path (see the package doc).
func (s *Socket) ExpectOnlyUntil(tb testing.TB, want []Frame, marker Frame, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var got []Frame
	for {
		f, err := s.Recv(time.Until(deadline))
		if err != nil {
			tb.Fatalf("%s: marker %s never came: %v\nwant before it: %s\ngot:  %s", s.ifname, marker, err,
				frameList(want), frameList(got))
		}
		if f.Equal(marker) {
			break
		}
		got = append(got, f)
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Equal(want[i])
	}
	if !ok {
		tb.Fatalf("%s: before marker %s\nwant: %s\ngot:  %s", s.ifname, marker, frameList(want), frameList(got))
	}
}

func frameList(fs []Frame) string {
	if len(fs) == 0 {
		return "(none)"
	}
	var b bytes.Buffer
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.String())
	}
	return b.String()
}

// OpenAll opens a raw CAN socket (CAN_RAW_FD_FRAMES on) bound to every CAN
// interface of ns (nil: the test's own namespace), closed at cleanup: it
// receives from interfaces made after it (see [Socket.RecvFrom]) and sends
// on any ([Socket.SendVia]), so that a test can use an interface the
// instant it exists.
func OpenAll(tb testing.TB, ns *NS) *Socket {
	tb.Helper()
	Require(tb)
	s := &Socket{fd: -1, ifname: "every interface"}
	ns.Do(tb, func() { s.bind(tb, 0) })
	return s
}

// SendVia sends one frame on the interface ifindex (of the socket's
// namespace), whichever the socket is bound to.
func (s *Socket) SendVia(tb testing.TB, ifindex int, f Frame) {
	tb.Helper()
	buf, err := f.marshal()
	if err != nil {
		tb.Fatalf("send %s on ifindex %d: %v", f, ifindex, err)
	}
	for {
		err := unix.Sendto(s.fd, buf, 0, &unix.SockaddrCAN{Ifindex: ifindex})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			tb.Fatalf("send %s on ifindex %d: %v", f, ifindex, err)
		}
		return
	}
}

// RecvFrom waits up to timeout for the next frame and says which
// interface it arrived on. It returns [ErrTimeout] if none came.
func (s *Socket) RecvFrom(timeout time.Duration) (f Frame, ifindex int, err error) {
	buf := make([]byte, canfdMTU)
	pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		ms := int((max(time.Until(deadline), 0) + time.Millisecond - 1) / time.Millisecond)
		n, err := unix.Poll(pfd, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Frame{}, 0, fmt.Errorf("poll %s: %w", s.ifname, err)
		}
		if n == 0 {
			if time.Now().Before(deadline) {
				continue
			}
			return Frame{}, 0, fmt.Errorf("%w on %s after %v", ErrTimeout, s.ifname, timeout)
		}
		r, from, err := unix.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return Frame{}, 0, fmt.Errorf("read %s: %w", s.ifname, err)
		}
		if sa, ok := from.(*unix.SockaddrCAN); ok {
			ifindex = sa.Ifindex
		}
		f, err = unmarshal(buf[:r])
		return f, ifindex, err
	}
}
