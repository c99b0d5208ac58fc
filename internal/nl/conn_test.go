package nl

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func errMsg(code int32, ackTLV string) Message {
	data := make([]byte, 4+unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(data, uint32(code))
	binary.NativeEndian.PutUint32(data[4:], unix.NLMSG_HDRLEN) // echoed header only
	m := Message{Header: Header{Type: Error}, Data: data}
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
}
