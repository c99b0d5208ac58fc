package nl

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a NETLINK_ROUTE socket, or whatever Transport stands in for
// one. It is safe for concurrent use: requests are serialized.
type Conn struct {
	mu     sync.Mutex
	t      Transport
	seq    uint32
	closed atomic.Bool
}

// NewConn returns a Conn over t. Dial and DialConfig make the transport of
// a real socket; package nltest makes one whose kernel is a function.
func NewConn(t Transport) *Conn { return &Conn{t: t} }

// Config says which socket DialConfig opens. The zero value is Dial's.
type Config struct {
	// Poll makes the socket wait in the Go runtime's network poller: Close
	// wakes an Execute that waits and SetDeadline bounds one. For
	// long-running processes; a short-lived one (a hook) is faster without
	// (the poller's set-up costs more than a request, see package doc).
	Poll bool
	// NetNS, when not 0, is a file descriptor of the network namespace to
	// open the socket in (an open /proc/PID/ns/net or a bind mount of
	// one); it stays the caller's. 0 means the calling thread's namespace.
	NetNS int
}

// Dial opens a blocking socket in the calling thread's network namespace.
func Dial() (*Conn, error) { return DialConfig(Config{}) }

// DialNetNS opens a blocking socket in the network namespace of nsFD.
func DialNetNS(nsFD int) (*Conn, error) { return DialConfig(Config{NetNS: nsFD}) }

// DialConfig opens a socket as cfg says.
func DialConfig(cfg Config) (*Conn, error) {
	t, err := dialSocket(cfg, 0)
	if err != nil {
		return nil, err
	}
	return NewConn(t), nil
}

// DialNetNS opens a Conn of the same kind as c (socket or stand-in) in the
// network namespace of nsFD.
func (c *Conn) DialNetNS(nsFD int) (*Conn, error) {
	t, err := c.t.DialNetNS(nsFD)
	if err != nil {
		return nil, err
	}
	return NewConn(t), nil
}

// NetNS returns a new file descriptor of c's network namespace (the caller
// closes it), e.g. to send a link there with IFLA_NET_NS_FD.
func (c *Conn) NetNS() (int, error) { return c.t.NetNS() }

// SetDeadline bounds the Executes that wait past t (the zero time: no
// bound); they fail with an error wrapping os.ErrDeadlineExceeded. Only a
// socket opened with Config.Poll has deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	d, ok := c.t.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return errors.New("netlink: this socket has no deadlines (open it with Config.Poll)")
	}
	return d.SetDeadline(t)
}

// Close closes the socket. An Execute waiting on a socket opened with
// Config.Poll returns an error wrapping ErrClosed, as do every Execute and
// Close after it: the socket is closed once, so a second Close cannot hit
// a descriptor reused meanwhile by another file.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	return c.t.Close()
}

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
	if c.closed.Load() {
		return nil, ErrClosed
	}
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
	if err := c.t.Send(b); err != nil {
		return nil, false, fmt.Errorf("netlink send: %w", err)
	}
	col := collector{seq: c.seq, dump: m.Header.Flags&Dump == Dump, ack: m.Header.Flags&Acknowledge != 0}
	for {
		datagram, err := c.t.Receive()
		if err != nil {
			return nil, false, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := split(datagram)
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
