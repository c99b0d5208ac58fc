package nl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// HeaderType is nlmsghdr.nlmsg_type.
type HeaderType uint16

// Control message types.
const (
	Error HeaderType = unix.NLMSG_ERROR
	Done  HeaderType = unix.NLMSG_DONE
)

// HeaderFlags is nlmsghdr.nlmsg_flags.
type HeaderFlags uint16

// Flags of requests (include/uapi/linux/netlink.h).
const (
	Request     HeaderFlags = unix.NLM_F_REQUEST
	Multi       HeaderFlags = unix.NLM_F_MULTI
	Acknowledge HeaderFlags = unix.NLM_F_ACK
	Root        HeaderFlags = unix.NLM_F_ROOT
	Match       HeaderFlags = unix.NLM_F_MATCH
	Dump                    = Root | Match
	Replace     HeaderFlags = unix.NLM_F_REPLACE
	Excl        HeaderFlags = unix.NLM_F_EXCL
	Create      HeaderFlags = unix.NLM_F_CREATE

	// DumpInterrupted marks dump replies whose table changed during the
	// dump (NLM_F_DUMP_INTR): the answer may be inconsistent.
	DumpInterrupted HeaderFlags = unix.NLM_F_DUMP_INTR

	capped  HeaderFlags = 0x100 // NLM_F_CAPPED, on error messages
	ackTLVs HeaderFlags = 0x200 // NLM_F_ACK_TLVS, on error messages
)

// Header is struct nlmsghdr.
type Header struct {
	Length   uint32
	Type     HeaderType
	Flags    HeaderFlags
	Sequence uint32
	PID      uint32
}

// Message is a netlink message: a header and its payload.
type Message struct {
	Header Header
	Data   []byte
}

func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// MarshalBinary encodes m; Header.Length is computed.
func (m Message) MarshalBinary() ([]byte, error) {
	b := make([]byte, align(unix.NLMSG_HDRLEN+len(m.Data)))
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(m.Data)))
	binary.NativeEndian.PutUint16(b[4:], uint16(m.Header.Type))
	binary.NativeEndian.PutUint16(b[6:], uint16(m.Header.Flags))
	binary.NativeEndian.PutUint32(b[8:], m.Header.Sequence)
	binary.NativeEndian.PutUint32(b[12:], m.Header.PID)
	copy(b[unix.NLMSG_HDRLEN:], m.Data)
	return b, nil
}

var errShort = errors.New("netlink: message shorter than its header says")

// UnmarshalBinary decodes one message from the start of b; Data aliases b.
func (m *Message) UnmarshalBinary(b []byte) error {
	if len(b) < unix.NLMSG_HDRLEN {
		return errShort
	}
	l := binary.NativeEndian.Uint32(b)
	// Compared as uint64: int(l) is negative from 1<<31 on 32 bits.
	if l < unix.NLMSG_HDRLEN || uint64(l) > uint64(len(b)) {
		return fmt.Errorf("netlink: message length %d in %d bytes", l, len(b))
	}
	m.Header = Header{
		Length:   l,
		Type:     HeaderType(binary.NativeEndian.Uint16(b[4:])),
		Flags:    HeaderFlags(binary.NativeEndian.Uint16(b[6:])),
		Sequence: binary.NativeEndian.Uint32(b[8:]),
		PID:      binary.NativeEndian.Uint32(b[12:]),
	}
	m.Data = b[unix.NLMSG_HDRLEN:l]
	return nil
}

// split cuts a datagram into its messages.
func split(b []byte) ([]Message, error) {
	var out []Message
	for len(b) >= unix.NLMSG_HDRLEN {
		var m Message
		if err := m.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		out = append(out, m)
		b = b[min(align(int(m.Header.Length)), len(b)):]
	}
	return out, nil
}
