// Package nltest puts a function in the kernel's place under an nl.Conn,
// after mdlayher/netlink's nltest: code built on nl (packages vxcan, cangw
// and what uses them) is tested without a kernel, with scripted answers,
// failures at any request and interrupted dumps.
package nltest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

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

// Dial returns a Conn whose kernel is fn.
func Dial(fn Func) *nl.Conn { return nl.NewConn(&transport{fn: fn}) }

// transport answers each request with fn; each reply is a datagram of its
// own, as a dump's are.
type transport struct {
	fn     Func
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
	return &transport{fn: t.fn, ns: nsFD}, nil
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
