package nl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KernelError is an error answer of the kernel: the errno and, when the kernel
// gave one, its extended-ack message (e.g. "Invalid vxcan peer name").
type KernelError struct {
	Errno   unix.Errno
	Message string
}

func (e *KernelError) Error() string {
	if e.Message != "" {
		return e.Errno.Error() + " (" + e.Message + ")"
	}
	return e.Errno.Error()
}

// Unwrap makes errors.Is(err, unix.EEXIST) and the like work.
func (e *KernelError) Unwrap() error { return e.Errno }

// Conn is a NETLINK_ROUTE socket. It is safe for concurrent use; requests
// are serialized.
type Conn struct {
	mu  sync.Mutex
	fd  int
	seq uint32
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
	return &Conn{fd: fd}, nil
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

// ErrDumpInterrupted: the kernel's tables kept changing while a dump was
// read (NLM_F_DUMP_INTR on its replies), so no consistent answer came in
// dumpAttempts tries.
var ErrDumpInterrupted = errors.New("netlink dump interrupted: the kernel's tables changed while they were read")

// dumpAttempts bounds how often Execute repeats an interrupted dump.
const dumpAttempts = 5

// Execute sends m (its sequence number and NLM_F_REQUEST are filled in)
// and returns the kernel's replies: for a dump every message up to
// NLMSG_DONE, else the replies up to the acknowledgement (when m asks for
// one) or the first reply. An error answer is returned as *KernelError. A
// dump the kernel marks interrupted (its tables changed meanwhile) is
// repeated, up to dumpAttempts times, then ErrDumpInterrupted.
func (c *Conn) Execute(m Message) ([]Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 1; ; attempt++ {
		replies, interrupted, err := c.execute(m)
		switch {
		case err != nil:
			return nil, err
		case !interrupted:
			return replies, nil
		case attempt == dumpAttempts:
			return nil, fmt.Errorf("%w (%d tries)", ErrDumpInterrupted, attempt)
		}
	}
}

// execute does one request and reads its answer.
func (c *Conn) execute(m Message) (replies []Message, interrupted bool, err error) {
	c.seq++
	m.Header.Sequence = c.seq
	m.Header.Flags |= Request
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, false, err
	}
	if err := rawSend(c.fd, b); err != nil {
		return nil, false, fmt.Errorf("netlink send: %w", err)
	}
	col := collector{seq: c.seq, dump: m.Header.Flags&Dump == Dump, ack: m.Header.Flags&Acknowledge != 0}
	for {
		// Peek at the datagram's size first: a buffer sized for the
		// largest dump would cost more to zero than the whole request.
		size, _, err := rawRecv(c.fd, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("netlink receive: %w", err)
		}
		buf := make([]byte, size) // replies keep pointing into it
		n, _, err := rawRecv(c.fd, buf, 0)
		if err != nil {
			return nil, false, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := split(buf[:n])
		if err != nil {
			return nil, false, err
		}
		if done, err := col.add(msgs); done || err != nil {
			return col.replies, col.interrupted, err
		}
	}
}

// collector gathers the answer to one request, a datagram at a time.
type collector struct {
	seq         uint32
	dump, ack   bool
	replies     []Message
	interrupted bool // a reply carried NLM_F_DUMP_INTR
}

// add takes one datagram's messages; done once the answer is complete.
func (c *collector) add(msgs []Message) (done bool, err error) {
	for _, r := range msgs {
		if r.Header.Sequence != c.seq {
			continue // a late reply to an earlier, failed request
		}
		c.interrupted = c.interrupted || r.Header.Flags&DumpInterrupted != 0
		switch r.Header.Type {
		case Error:
			// An error, or the acknowledgement.
			return true, errorOf(r)
		case Done:
			return true, doneError(r)
		}
		c.replies = append(c.replies, r)
	}
	return !c.dump && !c.ack && len(c.replies) > 0, nil
}

// rawSend and rawRecv make the system calls without telling the Go
// scheduler. The kernel handles a route request inside sendmsg and the
// replies are queued by then, so neither call waits for anything; but
// creating interfaces takes the kernel milliseconds under emulation, and a
// scheduler that sees a goroutine "blocked" in a system call that long
// starts another OS thread to take over its processor, which costs more
// than the call. (The socket is blocking; a reply that is not yet queued
// would stall this thread only.)
func rawSend(fd int, b []byte) error {
	var sa unix.RawSockaddrNetlink
	sa.Family = unix.AF_NETLINK
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrNetlink)
	if e != 0 {
		return e
	}
	return nil
}

func rawRecv(fd int, buf []byte, flags int) (n, msgFlags int, err error) {
	var iov unix.Iovec
	if len(buf) > 0 {
		iov.Base = &buf[0]
		iov.SetLen(len(buf))
	}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(msg.Flags), nil
}

// errorOf decodes an NLMSG_ERROR: nil for an acknowledgement.
func errorOf(m Message) error {
	if len(m.Data) < 4 {
		return fmt.Errorf("netlink: error message of %d bytes", len(m.Data))
	}
	code := int32(binary.NativeEndian.Uint32(m.Data))
	if code == 0 {
		return nil
	}
	e := &KernelError{Errno: unix.Errno(-code)}
	// With NLM_F_ACK_TLVS, attributes follow the echoed request header
	// (only the header when NLM_F_CAPPED).
	if m.Header.Flags&ackTLVs != 0 {
		off := 4 + unix.NLMSG_HDRLEN
		if m.Header.Flags&capped == 0 && len(m.Data) >= off {
			off = 4 + align(int(binary.NativeEndian.Uint32(m.Data[4:])))
		}
		if off <= len(m.Data) {
			if ad, err := NewAttributeDecoder(m.Data[off:]); err == nil {
				for ad.Next() {
					if ad.Type() == unix.NLMSGERR_ATTR_MSG {
						e.Message = ad.String()
					}
				}
			}
		}
	}
	return e
}

// doneError decodes the error a dump may end with.
func doneError(m Message) error {
	if len(m.Data) >= 4 {
		if code := int32(binary.NativeEndian.Uint32(m.Data)); code < 0 {
			return &KernelError{Errno: unix.Errno(-code)}
		}
	}
	return nil
}
