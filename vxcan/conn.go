package vxcan

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/rtconn"
	"github.com/kanto-can/kanto-can/nl"
	"golang.org/x/sys/unix"
)

// Conn is a route netlink socket in one network namespace, for vxcan
// pairs. It is safe for concurrent use: requests are serialized.
type Conn struct {
	c     rtconn.Conn
	links *canlink.Conn // the same socket, to read links back
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
	c, err := rtconn.Dial("vxcan", cfg)
	if err != nil {
		return nil, err
	}
	return newConn(c), nil
}

// Close closes the socket if the Conn opened it (Dial, DialConfig); a Conn
// made by NewConn leaves its socket to the caller.
func (c *Conn) Close() error { return c.c.Close() }

func newConn(c rtconn.Conn) *Conn { return &Conn{c: c, links: canlink.NewConn(c.NL)} }

// Pairs returns the vxcan ends in the Conn's network namespace.
func (c *Conn) Pairs() ([]canlink.Link, error) {
	all, err := c.links.Links()
	if err != nil {
		return nil, fmt.Errorf("vxcan: %w", err)
	}
	var out []canlink.Link
	for _, l := range all {
		if l.Kind == "vxcan" {
			out = append(out, l)
		}
	}
	return out, nil
}

// Pair describes a vxcan pair to create.
type Pair struct {
	Name     string   // this end, in the Conn's network namespace
	PeerName string   // the other end
	PeerNS   *os.File // the peer's network namespace; nil = the Conn's
	MTU      int      // canlink.MTUClassic or canlink.MTUFD; 0 = kernel default (canlink.MTUFD)
	Alias    string   // IFLA_IFALIAS of this end; "" = none
	// UpTimeout bounds the wait for both ends to carry frames; 0 means
	// DefaultUpTimeout.
	UpTimeout time.Duration
}

// vxcanInfoPeer is VXCAN_INFO_PEER (include/uapi/linux/can/vxcan.h).
const vxcanInfoPeer = 1

// Create makes the pair, both ends up and carrying frames, and returns this
// end. When a name is taken the error wraps unix.EEXIST; when the kernel has
// no vxcan, ErrNoVXCAN; when an end does not come up in time (the pair is
// then deleted), ErrNotOperational.
//
// The far end must be created by a request sent from inside PeerNS: the
// kernel looks a new link's name up in the requesting socket's namespace
// before anything else, so a request from here for "can0" would collide
// with a host can0. And the kernel cannot bring up the device it registers
// as "peer" inside the creating request (vxcan_open fails with ENOTCONN
// until both ends are linked). So one request, sent from PeerNS, registers
// the far end there under PeerName, up from its first moment, with this end
// as its peer, sent back here by IFLA_NET_NS_FD; a second request from here
// brings this end up and sets its alias. Create then waits until the
// kernel has made both ends operational (see linkWatch): before that, frames
// sent on either end are dropped.
func (c *Conn) Create(p Pair) (canlink.Link, error) {
	if p.MTU != 0 && p.MTU != canlink.MTUClassic && p.MTU != canlink.MTUFD {
		return canlink.Link{}, fmt.Errorf("vxcan: MTU %d: want %d (classic) or %d (FD)", p.MTU, canlink.MTUClassic, canlink.MTUFD)
	}
	creator := c
	near := nl.NewAttributeEncoder()
	near.String(unix.IFLA_IFNAME, p.Name)
	if p.MTU != 0 {
		near.Uint32(unix.IFLA_MTU, uint32(p.MTU))
	}
	if p.PeerNS != nil {
		// This end goes back to this Conn's namespace, named by a
		// descriptor of it (asked of the socket: the calling thread may be
		// elsewhere).
		ns, err := c.c.NL.NetNS()
		if err != nil {
			return canlink.Link{}, fmt.Errorf("vxcan: create %s: %w", p.Name, err)
		}
		defer unix.Close(ns)
		near.Uint32(unix.IFLA_NET_NS_FD, uint32(ns))
		inner, err := c.c.NL.DialNetNS(int(p.PeerNS.Fd()))
		if err != nil {
			return canlink.Link{}, fmt.Errorf("vxcan: open route netlink socket in the peer's namespace: %w", err)
		}
		defer inner.Close()
		creator = NewConn(inner)
	}
	// Join both namespaces' link notifications before either end can
	// come up, so that the one saying it did cannot be missed.
	nearWatch, err := c.c.NL.Watch(unix.RTMGRP_LINK)
	if err != nil {
		return canlink.Link{}, fmt.Errorf("vxcan: create %s: watch links: %w", p.Name, err)
	}
	defer nearWatch.Close()
	farWatch := nearWatch
	if creator != c {
		if farWatch, err = creator.c.NL.Watch(unix.RTMGRP_LINK); err != nil {
			return canlink.Link{}, fmt.Errorf("vxcan: create %s: watch links in the peer's namespace: %w", p.Name, err)
		}
		defer farWatch.Close()
	}
	far := nl.NewAttributeEncoder()
	far.String(unix.IFLA_IFNAME, p.PeerName)
	if p.MTU != 0 {
		far.Uint32(unix.IFLA_MTU, uint32(p.MTU))
	}
	far.Nested(unix.IFLA_LINKINFO, func(info *nl.AttributeEncoder) error {
		info.String(unix.IFLA_INFO_KIND, "vxcan")
		info.Nested(unix.IFLA_INFO_DATA, func(data *nl.AttributeEncoder) error {
			// VXCAN_INFO_PEER carries a struct ifinfomsg followed by the
			// peer's own attributes.
			data.Do(vxcanInfoPeer, func() ([]byte, error) {
				attrs, err := near.Encode()
				return append(rtconn.Ifinfomsg(0, 0, 0), attrs...), err
			})
			return nil
		})
		return nil
	})
	attrs, err := far.Encode()
	if err != nil {
		return canlink.Link{}, fmt.Errorf("vxcan: encode request: %w", err)
	}
	req := append(rtconn.Ifinfomsg(0, unix.IFF_UP, unix.IFF_UP), attrs...)
	if _, err := creator.c.Execute(unix.RTM_NEWLINK, nl.Acknowledge|nl.Create|nl.Excl, req); err != nil {
		if unknownKind(err) {
			err = fmt.Errorf("%w: %w", ErrNoVXCAN, err)
		}
		return canlink.Link{}, fmt.Errorf("vxcan: create %s with peer %s: %w", p.Name, p.PeerName, err)
	}
	up := nl.NewAttributeEncoder()
	up.String(unix.IFLA_IFNAME, p.Name)
	if p.Alias != "" {
		up.String(unix.IFLA_IFALIAS, p.Alias)
	}
	if attrs, err = up.Encode(); err != nil {
		return canlink.Link{}, err
	}
	if _, err := c.c.Execute(unix.RTM_NEWLINK, nl.Acknowledge, append(rtconn.Ifinfomsg(0, unix.IFF_UP, unix.IFF_UP), attrs...)); err != nil {
		err = fmt.Errorf("vxcan: bring up %s: %w", p.Name, err)
		if l, lerr := c.links.LinkByName(p.Name); lerr == nil {
			c.links.Delete(l.Index) // nothing half-made
		}
		return canlink.Link{}, err
	}
	end, err := c.links.LinkByName(p.Name)
	if err != nil {
		return canlink.Link{}, err
	}
	timeout := p.UpTimeout
	if timeout == 0 {
		timeout = DefaultUpTimeout
	}
	deadline := time.Now().Add(timeout)
	// Even an end read as up is awaited: its notification, sent once its
	// queues are active, is queued on the watch joined before.
	here := newLinkWatch(nearWatch, c.links)
	there := here // both ends in this namespace: one watch sees both
	if farWatch != nearWatch {
		there = newLinkWatch(farWatch, creator.links)
	}
	if err = here.await(end.Index, deadline); err != nil {
		err = fmt.Errorf("vxcan: %s (this end) did not come up within %v: %w", p.Name, timeout, err)
	}
	if err == nil {
		if err = there.await(end.PeerIndex, deadline); err != nil {
			err = fmt.Errorf("vxcan: peer %s (the other end, in the peer's namespace) did not come up within %v: %w", p.PeerName, timeout, err)
		}
	}
	if err != nil {
		c.links.Delete(end.Index) // nothing half-made
		return canlink.Link{}, err
	}
	end.OperState = canlink.OperUp
	return end, nil
}

// unknownKind: the kernel knows no link kind "vxcan" (no module, and none
// loaded on demand: "Unknown device type").
func unknownKind(err error) bool {
	var ke *nl.KernelError
	return errors.Is(err, unix.EOPNOTSUPP) && (!errors.As(err, &ke) || ke.Message == "" || ke.Message == "Unknown device type")
}
