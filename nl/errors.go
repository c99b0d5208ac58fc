package nl

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// KernelError is an error answer of the kernel: the errno and, when the kernel
// gave one, its extended-ack message (e.g. "Invalid vxcan peer name").
// Errors of this module's packages wrap it where the kernel refused:
// errors.As reaches it, errors.Is(err, unix.EEXIST) and the like match.
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
			// The echoed request's length, checked before int(): from
			// 1<<31 it is negative on 32 bits.
			off = len(m.Data) + 1
			if l := binary.NativeEndian.Uint32(m.Data[4:]); uint64(l) <= uint64(len(m.Data)) {
				off = 4 + align(int(l))
			}
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
