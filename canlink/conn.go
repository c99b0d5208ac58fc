package canlink

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// ErrNotFound is returned (wrapped) when a link does not exist.
var ErrNotFound = errors.New("no such interface")

// Conn is a route netlink socket in one network namespace, for its links.
// It is safe for concurrent use: requests are serialized.
type Conn struct {
	c *nl.Conn
}

// NewConn returns a Conn over c, e.g. a socket opened with nl.DialConfig
// or the scripted kernel of package nl/nltest. Closing the Conn closes c.
func NewConn(c *nl.Conn) *Conn { return &Conn{c: c} }

// Dial opens a Conn in the calling thread's network namespace.
func Dial() (*Conn, error) {
	c, err := nl.Dial()
	if err != nil {
		return nil, fmt.Errorf("canlink: open route netlink socket: %w", err)
	}
	return NewConn(c), nil
}

// DialNetNS opens a Conn in the network namespace referred to by fd (an
// open /proc/PID/ns/net or a bind mount of one). fd stays the caller's.
func DialNetNS(fd int) (*Conn, error) {
	if fd <= 0 {
		return nil, fmt.Errorf("canlink: DialNetNS: invalid namespace file descriptor %d", fd)
	}
	c, err := nl.DialNetNS(fd)
	if err != nil {
		return nil, fmt.Errorf("canlink: open route netlink socket: %w", err)
	}
	return NewConn(c), nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

func (c *Conn) execute(typ nl.HeaderType, flags nl.HeaderFlags, data []byte) ([]nl.Message, error) {
	return c.c.Execute(nl.Message{
		Header: nl.Header{Type: typ, Flags: nl.Request | flags},
		Data:   data,
	})
}

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
	msgs, err := c.execute(unix.RTM_GETLINK, 0, append(ifinfomsg(index, 0, 0), attrs...))
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
	msgs, err := c.execute(unix.RTM_GETLINK, nl.Dump, ifinfomsg(0, 0, 0))
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
	_, err := c.execute(unix.RTM_DELLINK, nl.Acknowledge, ifinfomsg(int32(index), 0, 0))
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
	if _, err := c.execute(unix.RTM_NEWLINK, nl.Acknowledge|nl.Create|nl.Excl, append(ifinfomsg(0, unix.IFF_UP, unix.IFF_UP), attrs...)); err != nil {
		return Link{}, fmt.Errorf("canlink: create vcan %s: %w", name, err)
	}
	if alias != "" {
		ae := nl.NewAttributeEncoder()
		ae.String(unix.IFLA_IFNAME, name)
		ae.String(unix.IFLA_IFALIAS, alias)
		if attrs, err = ae.Encode(); err != nil {
			return Link{}, err
		}
		if _, err := c.execute(unix.RTM_NEWLINK, nl.Acknowledge, append(ifinfomsg(0, 0, 0), attrs...)); err != nil {
			if l, lerr := c.LinkByName(name); lerr == nil {
				c.Delete(l.Index) // nothing half-made
			}
			return Link{}, fmt.Errorf("canlink: alias of vcan %s: %w", name, err)
		}
	}
	return c.LinkByName(name)
}
