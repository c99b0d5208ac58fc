// Package nltest puts a function in the kernel's place under an nl.Conn,
// after mdlayher/netlink's nltest: code built on nl (packages vxcan, cangw
// and what uses them) is tested without a kernel, with scripted answers,
// failures at any request and interrupted dumps.
package nltest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// Func answers one request as the kernel would, with the replies' messages
// (their sequence numbers may be left 0: the request's is filled in) or an
// error: a unix.Errno or an *nl.KernelError (whose Message travels as the
// kernel's extended ack). ns says which socket asked: 0 for the Conn that
// Dial returned, else the namespace file descriptor given to DialNetNS.
//
// The end of the answer is added as the kernel adds it: NLMSG_DONE after a
// dump's replies, the acknowledgement of a request that asked for one.
// Func is called with one request at a time per Conn; Conns in several
// namespaces may call it concurrently.
type Func func(ns int, req nl.Message) ([]nl.Message, error)

// Notifications answers a Watcher's Receive as the kernel's multicast
// would: the notifications of groups in namespace ns (numbered as for
// Func) from position from of the kernel's record on, and the position
// after them. A Watcher is opened at the position that from = -1 returns
// (with no messages): it sees what happens after it joined.
//
// No messages means that nothing more happens while the Watcher waits: its
// Receive fails with an error wrapping os.ErrDeadlineExceeded when it has
// a deadline (the time passed), else with ErrNoAnswer.
type Notifications func(ns int, groups uint32, from int) (msgs []nl.Message, next int)

// Dial returns a Conn whose kernel is fn. Its Watchers receive nothing.
func Dial(fn Func) *nl.Conn { return DialNotifying(fn, nil) }

// DialNotifying returns a Conn whose kernel is fn, and whose Watchers (Conn.Watch)
// receive what notify says.
func DialNotifying(fn Func, notify Notifications) *nl.Conn {
	return nl.NewConn(&transport{fn: fn, notify: notify})
}

// transport answers each request with fn; each reply is a datagram of its
// own, as a dump's are.
type transport struct {
	fn     Func
	notify Notifications
	ns     int
	mu     sync.Mutex
	queue  [][]byte
	closed bool
}

// ErrNoAnswer is what a Conn's Execute fails with (wrapped) when it waits
// for more than fn answered: a request that asked neither for a dump nor
// for an acknowledgement, answered with no replies. A kernel would leave
// it waiting for good.
var ErrNoAnswer = errors.New("nltest: no more replies to receive (the Func answered with none)")

func (t *transport) Send(b []byte) error {
	var req nl.Message
	if err := req.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("nltest: request: %w", err)
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nl.ErrClosed
	}
	replies, err := t.fn(t.ns, req)
	var out []nl.Message
	dump := req.Header.Flags&nl.Dump == nl.Dump
	for _, r := range replies {
		if r.Header.Sequence == 0 {
			r.Header.Sequence = req.Header.Sequence
		}
		if dump {
			r.Header.Flags |= nl.Multi
		}
		out = append(out, r)
	}
	switch {
	case err != nil:
		out = append(out, Error(req, err))
	case dump:
		out = append(out, nl.Message{
			Header: nl.Header{Type: nl.Done, Flags: nl.Multi, Sequence: req.Header.Sequence},
			Data:   make([]byte, 4),
		})
	case req.Header.Flags&nl.Acknowledge != 0:
		out = append(out, Error(req, nil))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range out {
		d, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		t.queue = append(t.queue, d)
	}
	return nil
}

func (t *transport) Receive() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nl.ErrClosed
	}
	if len(t.queue) == 0 {
		return nil, ErrNoAnswer
	}
	d := t.queue[0]
	t.queue = t.queue[1:]
	return d, nil
}

// NetNS returns a descriptor of /dev/null: there is no namespace, and a
// request that carries it (IFLA_NET_NS_FD) only needs a number.
func (t *transport) NetNS() (int, error) {
	return unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

func (t *transport) DialNetNS(nsFD int) (nl.Transport, error) {
	if nsFD <= 0 {
		return nil, fmt.Errorf("nltest: DialNetNS(%d): not a file descriptor", nsFD)
	}
	return &transport{fn: t.fn, notify: t.notify, ns: nsFD}, nil
}

func (t *transport) Watch(groups uint32) (nl.Transport, error) {
	w := &watcher{transport: transport{fn: t.fn, ns: t.ns}, notify: t.notify, groups: groups}
	if w.notify != nil {
		_, w.from = w.notify(t.ns, groups, -1)
	}
	return w, nil
}

// watcher is a Watcher's transport: each notification a datagram.
type watcher struct {
	transport
	notify   Notifications
	groups   uint32
	from     int
	deadline bool
}

func (w *watcher) Send([]byte) error { return errors.New("nltest: a Watcher sends no requests") }

func (w *watcher) Receive() ([]byte, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, nl.ErrClosed
	}
	if len(w.queue) == 0 && w.notify != nil {
		var msgs []nl.Message
		msgs, w.from = w.notify(w.ns, w.groups, w.from)
		for _, m := range msgs {
			d, err := m.MarshalBinary()
			if err != nil {
				w.mu.Unlock()
				return nil, err
			}
			w.queue = append(w.queue, d)
		}
	}
	deadline := w.deadline
	w.mu.Unlock()
	if len(w.queue) == 0 && deadline {
		return nil, fmt.Errorf("nltest: no notification before the deadline: %w", os.ErrDeadlineExceeded)
	}
	return w.transport.Receive()
}

// SetDeadline makes a Receive with nothing to return fail as one past its
// deadline would (a zero t: as one that would wait for good).
func (w *watcher) SetDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = !t.IsZero()
	return nil
}

func (t *transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}

// Error returns the kernel's NLMSG_ERROR answer to req: the
// acknowledgement for a nil err, else the errno of err (a unix.Errno or an
// *nl.KernelError, whose Message is sent as the extended ack; any other
// error is EINVAL with err's text as the message).
func Error(req nl.Message, err error) nl.Message {
	var errno unix.Errno
	var msg string
	var ke *nl.KernelError
	switch {
	case err == nil:
	case errors.As(err, &ke):
		errno, msg = ke.Errno, ke.Message
	case errors.As(err, &errno):
	default:
		errno, msg = unix.EINVAL, err.Error()
	}
	// The error code, then the request's header echoed (NLM_F_CAPPED:
	// without its payload), then the extended ack's attributes.
	data := make([]byte, 4+unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(data, uint32(-int32(errno)))
	hdr, _ := nl.Message{Header: req.Header}.MarshalBinary()
	copy(data[4:], hdr)
	flags := nl.HeaderFlags(0x100) // NLM_F_CAPPED
	if msg != "" {
		ae := nl.NewAttributeEncoder()
		ae.String(unix.NLMSGERR_ATTR_MSG, msg)
		attrs, _ := ae.Encode()
		data = append(data, attrs...)
		flags |= 0x200 // NLM_F_ACK_TLVS
	}
	return nl.Message{Header: nl.Header{Type: nl.Error, Flags: flags, Sequence: req.Header.Sequence}, Data: data}
}
