package nl

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func errMsg(code int32, ackTLV string) Message {
	return errMsgSeq(0, code, ackTLV)
}

func errMsgSeq(seq uint32, code int32, ackTLV string) Message {
	data := make([]byte, 4+unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(data, uint32(code))
	binary.NativeEndian.PutUint32(data[4:], unix.NLMSG_HDRLEN) // echoed header only
	m := Message{Header: Header{Type: Error, Sequence: seq}, Data: data}
	if ackTLV != "" {
		ae := NewAttributeEncoder()
		ae.String(unix.NLMSGERR_ATTR_MSG, ackTLV)
		attrs, _ := ae.Encode()
		m.Data = append(m.Data, attrs...)
		m.Header.Flags |= ackTLVs | capped
	}
	return m
}

func TestErrorOf(t *testing.T) {
	if err := errorOf(errMsg(0, "")); err != nil {
		t.Fatalf("ack: %v", err)
	}
	err := errorOf(errMsg(-int32(unix.EEXIST), "File exists here"))
	var e *KernelError
	if !errors.As(err, &e) || !errors.Is(err, unix.EEXIST) || e.Message != "File exists here" {
		t.Fatalf("errorOf = %#v", err)
	}
	if got := err.Error(); got != "file exists (File exists here)" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestSplit(t *testing.T) {
	var datagram []byte
	for i := 0; i < 3; i++ {
		b, err := (Message{Header: Header{Type: 16, Sequence: uint32(i)}, Data: []byte{1, 2, 3}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		datagram = append(datagram, b...)
	}
	msgs, err := split(datagram)
	if err != nil || len(msgs) != 3 || msgs[2].Header.Sequence != 2 {
		t.Fatalf("split = %+v, %v", msgs, err)
	}
	binary.NativeEndian.PutUint32(datagram, 9999)
	if _, err := split(datagram); err == nil {
		t.Fatal("bad length accepted")
	}
	// Lengths of 2 GiB and more are an int's negatives on 32 bits: they
	// must be refused there too, not sliced with.
	for _, l := range []uint32{1 << 31, 0xffffffff} {
		binary.NativeEndian.PutUint32(datagram, l)
		if _, err := split(datagram); err == nil {
			t.Fatalf("length %#x accepted", l)
		}
	}
}

// An error's echoed request length beyond the message (2 GiB and more, an
// int's negatives on 32 bits) leaves the extended ack unread, and the
// error is still the kernel's.
func TestErrorOfBadEchoedLength(t *testing.T) {
	for _, l := range []uint32{1 << 31, 0xfffffff0, 0xffffffff} {
		m := errMsg(-int32(unix.EEXIST), "File exists here")
		m.Header.Flags &^= capped
		binary.NativeEndian.PutUint32(m.Data[4:], l)
		var e *KernelError
		if err := errorOf(m); !errors.As(err, &e) || !errors.Is(err, unix.EEXIST) || e.Message != "" {
			t.Errorf("echoed length %#x: errorOf = %#v", l, err)
		}
	}
}

// A dump whose replies carry NLM_F_DUMP_INTR is complete but marked
// interrupted (Execute asks again); it used to be taken as consistent.
// Replies to other sequence numbers are skipped; an error ends the answer.
func TestCollector(t *testing.T) {
	link := func(seq uint32, flags HeaderFlags) Message {
		return Message{Header: Header{Type: unix.RTM_NEWLINK, Sequence: seq, Flags: Multi | flags}, Data: []byte{1}}
	}
	done := func(seq uint32, flags HeaderFlags) Message {
		return Message{Header: Header{Type: Done, Sequence: seq, Flags: Multi | flags}, Data: make([]byte, 4)}
	}
	for _, tc := range []struct {
		name        string
		datagrams   [][]Message
		replies     int
		interrupted bool
		err         error
	}{
		{"whole dump", [][]Message{{link(7, 0), link(7, 0)}, {link(7, 0), done(7, 0)}}, 3, false, nil},
		{"interrupted dump", [][]Message{{link(7, 0), link(7, DumpInterrupted)}, {done(7, DumpInterrupted)}}, 2, true, nil},
		{"interrupted at done", [][]Message{{link(7, 0), done(7, DumpInterrupted)}}, 1, true, nil},
		{"late replies skipped", [][]Message{{link(6, 0), done(6, 0), link(7, 0), done(7, 0)}}, 1, false, nil},
		{"error ends it", [][]Message{{link(7, 0), errMsgSeq(7, -int32(unix.EBUSY), "")}}, 1, false, unix.EBUSY},
	} {
		c := collector{seq: 7, dump: true}
		var finished bool
		var err error
		for _, d := range tc.datagrams {
			if finished, err = c.add(d); finished {
				break
			}
		}
		if !finished || len(c.replies) != tc.replies || c.interrupted != tc.interrupted || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%s: done %v, %d replies, interrupted %v, err %v", tc.name, finished, len(c.replies), c.interrupted, err)
		}
	}
	// Not a dump, no ack: the first reply is the answer.
	c := collector{seq: 3}
	if finished, err := c.add([]Message{link(3, 0)}); !finished || err != nil || len(c.replies) != 1 {
		t.Errorf("single reply: done %v, %v", finished, err)
	}
}

// closeCounter is a Transport that counts its closes (and fails the rest).
type closeCounter struct{ closes int }

func (c *closeCounter) Send([]byte) error { return errors.New("send on a test transport") }
func (c *closeCounter) Receive() ([]byte, error) {
	return nil, errors.New("receive on a test transport")
}
func (c *closeCounter) NetNS() (int, error)              { return 0, errors.New("no namespace") }
func (c *closeCounter) DialNetNS(int) (Transport, error) { return nil, errors.New("no namespace") }
func (c *closeCounter) Close() error                     { c.closes++; return nil }
func (c *closeCounter) Watch(uint32) (Transport, error)  { return nil, errors.New("no watch") }

// A second Close must not close the descriptor again: by then it may be
// another file's. It, and an Execute after Close, say ErrClosed.
func TestCloseIsOnce(t *testing.T) {
	tr := &closeCounter{}
	c := NewConn(tr)
	if err := c.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if tr.closes != 1 {
		t.Errorf("the transport was closed %d times", tr.closes)
	}
	if _, err := c.Execute(Message{Header: Header{Type: 16}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after Close = %v, want ErrClosed", err)
	}
}
