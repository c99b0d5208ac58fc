package nl

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	attrHdrLen = unix.SizeofNlAttr
	nestedFlag = unix.NLA_F_NESTED
	typeMask   = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
)

// AttributeEncoder builds a list of netlink attributes (struct nlattr).
type AttributeEncoder struct {
	b   []byte
	err error
}

// NewAttributeEncoder returns an empty encoder.
func NewAttributeEncoder() *AttributeEncoder { return &AttributeEncoder{} }

// Bytes adds an attribute with payload v.
func (ae *AttributeEncoder) Bytes(typ uint16, v []byte) {
	if attrHdrLen+len(v) > 0xffff {
		ae.err = fmt.Errorf("netlink: attribute %d: payload of %d bytes is too long", typ, len(v))
		return
	}
	var h [attrHdrLen]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(attrHdrLen+len(v)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	ae.b = append(ae.b, h[:]...)
	ae.b = append(ae.b, v...)
	ae.b = append(ae.b, make([]byte, align(len(v))-len(v))...)
}

// Uint8 adds a u8 attribute.
func (ae *AttributeEncoder) Uint8(typ uint16, v uint8) { ae.Bytes(typ, []byte{v}) }

// Uint16 adds a u16 attribute in native byte order.
func (ae *AttributeEncoder) Uint16(typ uint16, v uint16) {
	ae.Bytes(typ, binary.NativeEndian.AppendUint16(nil, v))
}

// Uint32 adds a u32 attribute in native byte order.
func (ae *AttributeEncoder) Uint32(typ uint16, v uint32) {
	ae.Bytes(typ, binary.NativeEndian.AppendUint32(nil, v))
}

// Int32 adds an s32 attribute in native byte order.
func (ae *AttributeEncoder) Int32(typ uint16, v int32) { ae.Uint32(typ, uint32(v)) }

// String adds a NUL-terminated string attribute.
func (ae *AttributeEncoder) String(typ uint16, s string) { ae.Bytes(typ, append([]byte(s), 0)) }

// Do adds an attribute whose payload fn builds.
func (ae *AttributeEncoder) Do(typ uint16, fn func() ([]byte, error)) {
	b, err := fn()
	if err != nil {
		ae.err = err
		return
	}
	ae.Bytes(typ, b)
}

// Nested adds an attribute (with NLA_F_NESTED) holding the attributes fn
// adds to its own encoder.
func (ae *AttributeEncoder) Nested(typ uint16, fn func(*AttributeEncoder) error) {
	nae := NewAttributeEncoder()
	if err := fn(nae); err != nil {
		ae.err = err
		return
	}
	b, err := nae.Encode()
	if err != nil {
		ae.err = err
		return
	}
	ae.Bytes(typ|nestedFlag, b)
}

// Encode returns the attributes, or the first error met building them.
func (ae *AttributeEncoder) Encode() ([]byte, error) { return ae.b, ae.err }

// AttributeDecoder walks a list of netlink attributes. A malformed list
// stops the walk and sets Err; a payload of the wrong size for the getter
// used sets Err naming the attribute type.
type AttributeDecoder struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

// NewAttributeDecoder returns a decoder over b.
func NewAttributeDecoder(b []byte) (*AttributeDecoder, error) {
	return &AttributeDecoder{b: b}, nil
}

// Next moves to the next attribute; false at the end or on an error.
func (ad *AttributeDecoder) Next() bool {
	if ad.err != nil || len(ad.b) < attrHdrLen {
		if ad.err == nil && len(ad.b) != 0 {
			ad.err = fmt.Errorf("netlink: %d trailing bytes after the last attribute", len(ad.b))
		}
		return false
	}
	l := int(binary.NativeEndian.Uint16(ad.b))
	if l < attrHdrLen || l > len(ad.b) {
		ad.err = fmt.Errorf("netlink: attribute %d: length %d in %d bytes", binary.NativeEndian.Uint16(ad.b[2:])&typeMask, l, len(ad.b))
		return false
	}
	ad.typ = binary.NativeEndian.Uint16(ad.b[2:]) & typeMask
	ad.data = ad.b[attrHdrLen:l]
	ad.b = ad.b[min(align(l), len(ad.b)):]
	return true
}

// Type is the current attribute's type, without the nested and byte
// order flags.
func (ad *AttributeDecoder) Type() uint16 { return ad.typ }

// Err is the first error met.
func (ad *AttributeDecoder) Err() error { return ad.err }

// Bytes is the current attribute's payload.
func (ad *AttributeDecoder) Bytes() []byte { return ad.data }

// String is the current attribute's payload without its NUL terminator.
func (ad *AttributeDecoder) String() string { return strings.TrimRight(string(ad.data), "\x00") }

func (ad *AttributeDecoder) sized(n int) []byte {
	if len(ad.data) != n {
		if ad.err == nil {
			ad.err = fmt.Errorf("netlink: attribute %d: length %d, want %d", ad.typ, len(ad.data), n)
		}
		return make([]byte, n)
	}
	return ad.data
}

// Uint8 is the current attribute's u8 payload.
func (ad *AttributeDecoder) Uint8() uint8 { return ad.sized(1)[0] }

// Uint16 is the current attribute's u16 payload.
func (ad *AttributeDecoder) Uint16() uint16 { return binary.NativeEndian.Uint16(ad.sized(2)) }

// Uint32 is the current attribute's u32 payload.
func (ad *AttributeDecoder) Uint32() uint32 { return binary.NativeEndian.Uint32(ad.sized(4)) }

// Int32 is the current attribute's s32 payload.
func (ad *AttributeDecoder) Int32() int32 { return int32(ad.Uint32()) }

// Nested walks the current attribute's payload as attributes.
func (ad *AttributeDecoder) Nested(fn func(*AttributeDecoder) error) {
	nad := &AttributeDecoder{b: ad.data}
	if err := fn(nad); err != nil && ad.err == nil {
		ad.err = err
	}
	if nad.err != nil && ad.err == nil {
		ad.err = nad.err
	}
}
