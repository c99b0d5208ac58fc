// Package nlsock is a small, blocking NETLINK_ROUTE socket: send one
// request, read its replies up to the acknowledgement or the end of the
// dump, in the calling goroutine.
//
// Messages and attributes are mdlayher/netlink's types; only the socket is
// our own. The reason is start-up cost on a container's start path: the
// library's socket goes through the Go runtime's network poller, and its
// namespace-bound sockets are made on a new locked goroutine, which under
// emulation cost more than the whole attach's netlink work (measured, see
// docs/benchmarks.md). Here the kernel answers a route request while
// sendmsg runs, so the replies are already queued when we read them; a
// socket in another namespace is made on the calling thread, which is moved
// into the namespace and back.
package nlsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Error is an error answer of the kernel: the errno and, when the kernel
// gave one, its extended-ack message (e.g. "Invalid vxcan peer name").
type Error struct {
	Errno   unix.Errno
	Message string
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Errno.Error() + " (" + e.Message + ")"
	}
	return e.Errno.Error()
}

// Unwrap makes errors.Is(err, unix.EEXIST) and the like work.
func (e *Error) Unwrap() error { return e.Errno }

// Conn is a NETLINK_ROUTE socket. It is safe for concurrent use; requests
// are serialized.
type Conn struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

// Dial opens a socket in the calling thread's network namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// Ask for the kernel's error messages; older kernels ignore it.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	return &Conn{fd: fd, buf: make([]byte, 64<<10)}, nil
}

// DialNetNS opens a socket in the network namespace of nsFD. A socket stays
// in the namespace it was made in, so the calling thread is moved there for
// the socket call and back. If moving back fails the thread stays locked,
// and Go discards it when the goroutine ends.
func DialNetNS(nsFD int) (*Conn, error) {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlink: own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlink: enter network namespace: %w", err)
	}
	c, dialErr := Dial()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		if dialErr == nil {
			c.Close()
		}
		return nil, fmt.Errorf("netlink: return to own network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return c, dialErr
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// Execute sends m (its sequence number and NLM_F_REQUEST are filled in)
// and returns the kernel's replies: for a dump every message up to
// NLMSG_DONE, else the replies up to the acknowledgement (when m asks for
// one) or the first reply. An error answer is returned as *Error.
func (c *Conn) Execute(m netlink.Message) ([]netlink.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	m.Header.Sequence = c.seq
	m.Header.Flags |= netlink.Request
	m.Header.Length = uint32(align(unix.NLMSG_HDRLEN + len(m.Data)))
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	dump := m.Header.Flags&netlink.Dump == netlink.Dump
	ack := m.Header.Flags&netlink.Acknowledge != 0
	var replies []netlink.Message
	for {
		n, _, flags, _, err := unix.Recvmsg(c.fd, c.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("netlink receive: reply larger than %d bytes", len(c.buf))
		}
		// Copy: the replies outlive the buffer's next use.
		msgs, err := split(append([]byte(nil), c.buf[:n]...))
		if err != nil {
			return nil, err
		}
		for _, r := range msgs {
			if r.Header.Sequence != c.seq {
				continue // a late reply to an earlier, failed request
			}
			switch r.Header.Type {
			case netlink.Error:
				if err := errorOf(r); err != nil {
					return nil, err
				}
				return replies, nil // the acknowledgement
			case netlink.Done:
				if err := doneError(r); err != nil {
					return nil, err
				}
				return replies, nil
			}
			replies = append(replies, r)
		}
		if !dump && !ack && len(replies) > 0 {
			return replies, nil
		}
	}
}

// split cuts a datagram into its messages.
func split(b []byte) ([]netlink.Message, error) {
	var out []netlink.Message
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("netlink: message length %d in a datagram of %d bytes", l, len(b))
		}
		aligned := min(align(l), len(b))
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:aligned]); err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		out = append(out, m)
		b = b[aligned:]
	}
	return out, nil
}

func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// errorOf decodes an NLMSG_ERROR: nil for an acknowledgement.
func errorOf(m netlink.Message) error {
	if len(m.Data) < 4 {
		return fmt.Errorf("netlink: error message of %d bytes", len(m.Data))
	}
	code := int32(binary.NativeEndian.Uint32(m.Data))
	if code == 0 {
		return nil
	}
	e := &Error{Errno: unix.Errno(-code)}
	// With NLM_F_ACK_TLVS, attributes follow the echoed request header
	// (only the header when NLM_F_CAPPED).
	if m.Header.Flags&0x200 != 0 { // NLM_F_ACK_TLVS
		off := 4 + unix.NLMSG_HDRLEN
		if m.Header.Flags&0x100 == 0 && len(m.Data) >= off { // not NLM_F_CAPPED
			off = 4 + int(binary.NativeEndian.Uint32(m.Data[4:]))
		}
		if off <= len(m.Data) {
			if ad, err := netlink.NewAttributeDecoder(m.Data[off:]); err == nil {
				for ad.Next() {
					if ad.Type() == unix.NLMSGERR_ATTR_MSG {
						e.Message = strings.TrimRight(ad.String(), "\x00")
					}
				}
			}
		}
	}
	return e
}

// doneError decodes the error a dump may end with.
func doneError(m netlink.Message) error {
	if len(m.Data) >= 4 {
		if code := int32(binary.NativeEndian.Uint32(m.Data)); code < 0 {
			return &Error{Errno: unix.Errno(-code)}
		}
	}
	return nil
}
