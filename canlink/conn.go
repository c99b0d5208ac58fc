package canlink

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/rtconn"
	"github.com/kanto-can/kanto-can/nl"
)

// ErrNotFound is returned (wrapped) when a link does not exist.
var ErrNotFound = errors.New("no such interface")

// Conn is a route netlink socket in one network namespace, for its links.
// It is safe for concurrent use: requests are serialized.
type Conn struct {
	c rtconn.Conn
}

// NewConn returns a Conn over c, e.g. a socket opened with nl.DialConfig
// or the scripted kernel of package nl/nltest. c stays the caller's: the
// Conn's Close leaves it open, so one socket may serve a Conn of each of
// canlink, vxcan and cangw and be closed once, by whoever opened it.
func NewConn(c *nl.Conn) *Conn { return newConn(rtconn.Borrow(c)) }

// Dial opens a Conn with a socket of its own in the calling thread's
// network namespace.
func Dial() (*Conn, error) { return DialConfig(nl.Config{}) }

// DialConfig opens a Conn with a socket of its own as cfg says: cfg.NetNS
// names another network namespace (an open /proc/PID/ns/net or a bind
// mount of one, which stays the caller's).
func DialConfig(cfg nl.Config) (*Conn, error) {
	c, err := rtconn.Dial("canlink", cfg)
	if err != nil {
		return nil, err
	}
	return newConn(c), nil
}

// Close closes the socket if the Conn opened it (Dial, DialConfig); a Conn
// made by NewConn leaves its socket to the caller.
func (c *Conn) Close() error { return c.c.Close() }

func newConn(c rtconn.Conn) *Conn { return &Conn{c: c} }

// LinkByName returns the link called name, or an error wrapping ErrNotFound.
func (c *Conn) LinkByName(name string) (Link, error) {
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	return c.getLink(0, ae, name)
}

// LinkByIndex returns the link with this ifindex, or an error wrapping
// ErrNotFound.
func (c *Conn) LinkByIndex(index int) (Link, error) {
	return c.getLink(int32(index), nl.NewAttributeEncoder(), fmt.Sprintf("index %d", index))
}

func (c *Conn) getLink(index int32, ae *nl.AttributeEncoder, what string) (Link, error) {
	attrs, err := ae.Encode()
	if err != nil {
		return Link{}, err
	}
	msgs, err := c.c.Execute(unix.RTM_GETLINK, 0, append(rtconn.Ifinfomsg(index, 0, 0), attrs...))
	if errors.Is(err, unix.ENODEV) {
		return Link{}, fmt.Errorf("interface %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return Link{}, fmt.Errorf("canlink: get interface %s: %w", what, err)
	}
	if len(msgs) != 1 {
		return Link{}, fmt.Errorf("canlink: get interface %s: %d replies, want 1", what, len(msgs))
	}
	return parseLink(msgs[0])
}

// Links returns every link in the Conn's network namespace.
func (c *Conn) Links() ([]Link, error) {
	msgs, err := c.c.Execute(unix.RTM_GETLINK, nl.Dump, rtconn.Ifinfomsg(0, 0, 0))
	if err != nil {
		return nil, fmt.Errorf("canlink: list interfaces: %w", err)
	}
	links := make([]Link, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		l, err := parseLink(m)
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

// Delete removes the link with this ifindex. Deleting one end of a vxcan
// pair removes both.
func (c *Conn) Delete(index int) error {
	_, err := c.c.Execute(unix.RTM_DELLINK, nl.Acknowledge, rtconn.Ifinfomsg(int32(index), 0, 0))
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("interface index %d: %w", index, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("canlink: delete interface index %d: %w", index, err)
	}
	return nil
}

// CreateVCAN makes a virtual CAN bus (a vcan interface), up, with the MTU
// and alias given: the bus of containers that talk to each other without
// hardware. When the name is taken the error wraps unix.EEXIST.
func (c *Conn) CreateVCAN(name string, mtu int, alias string) (Link, error) {
	if mtu != MTUClassic && mtu != MTUFD {
		return Link{}, fmt.Errorf("canlink: vcan MTU %d: want %d (classic) or %d (FD)", mtu, MTUClassic, MTUFD)
	}
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	ae.Uint32(unix.IFLA_MTU, uint32(mtu))
	ae.Nested(unix.IFLA_LINKINFO, func(info *nl.AttributeEncoder) error {
		info.String(unix.IFLA_INFO_KIND, "vcan")
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return Link{}, err
	}
	if _, err := c.c.Execute(unix.RTM_NEWLINK, nl.Acknowledge|nl.Create|nl.Excl, append(rtconn.Ifinfomsg(0, unix.IFF_UP, unix.IFF_UP), attrs...)); err != nil {
		return Link{}, fmt.Errorf("canlink: create vcan %s: %w", name, err)
	}
	if alias != "" {
		ae := nl.NewAttributeEncoder()
		ae.String(unix.IFLA_IFNAME, name)
		ae.String(unix.IFLA_IFALIAS, alias)
		if attrs, err = ae.Encode(); err != nil {
			return Link{}, err
		}
		if _, err := c.c.Execute(unix.RTM_NEWLINK, nl.Acknowledge, append(rtconn.Ifinfomsg(0, 0, 0), attrs...)); err != nil {
			if l, lerr := c.LinkByName(name); lerr == nil {
				c.Delete(l.Index) // nothing half-made
			}
			return Link{}, fmt.Errorf("canlink: alias of vcan %s: %w", name, err)
		}
	}
	return c.LinkByName(name)
}
