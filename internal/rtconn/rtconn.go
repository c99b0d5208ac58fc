// Package rtconn is the route netlink socket under the Conns of the public
// packages canlink, vxcan and cangw, and what they encode alike.
//
// A socket has one owner, who closes it. A Conn made by Dial owns the
// socket it opened; one made over a caller's socket (the packages'
// NewConn) only borrows it: its Close leaves the socket to the caller, who
// may have handed the same socket to a Conn of each package.
package rtconn

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// Conn is a route netlink socket, owned or borrowed.
type Conn struct {
	NL    *nl.Conn
	owned bool
}

// Dial opens a socket as cfg says, owned by the Conn; pkg names the
// package in errors.
func Dial(pkg string, cfg nl.Config) (Conn, error) {
	if cfg.NetNS < 0 {
		return Conn{}, fmt.Errorf("%s: invalid namespace file descriptor %d", pkg, cfg.NetNS)
	}
	c, err := nl.DialConfig(cfg)
	if err != nil {
		return Conn{}, fmt.Errorf("%s: open route netlink socket: %w", pkg, err)
	}
	return Conn{NL: c, owned: true}, nil
}

// Borrow uses c, which stays its caller's.
func Borrow(c *nl.Conn) Conn { return Conn{NL: c} }

// Close closes the socket if the Conn owns it.
func (c Conn) Close() error {
	if !c.owned {
		return nil
	}
	return c.NL.Close()
}

// Execute sends a request of type typ with flags (NLM_F_REQUEST is added)
// and data, and returns the kernel's replies (see nl.Conn.Execute).
func (c Conn) Execute(typ nl.HeaderType, flags nl.HeaderFlags, data []byte) ([]nl.Message, error) {
	return c.NL.Execute(nl.Message{Header: nl.Header{Type: typ, Flags: nl.Request | flags}, Data: data})
}

// IfinfomsgLen is the size of struct ifinfomsg.
const IfinfomsgLen = 16

// Ifinfomsg encodes struct ifinfomsg, the header of every link request.
func Ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, IfinfomsgLen)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}
