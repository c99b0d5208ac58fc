package cangw

import (
	"errors"
	"fmt"

	"github.com/kanto-can/kanto-can/internal/rtconn"
	"github.com/kanto-can/kanto-can/nl"
)

// Conn is a route netlink socket for managing can-gw rules in one network
// namespace. It is safe for concurrent use: requests are serialized.
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
// mount of one, which stays the caller's). Rules are per namespace, and
// interface indexes are that namespace's.
func DialConfig(cfg nl.Config) (*Conn, error) {
	c, err := rtconn.Dial("cangw", cfg)
	if err != nil {
		return nil, err
	}
	return newConn(c), nil
}

// Close closes the socket if the Conn opened it (Dial, DialConfig); a Conn
// made by NewConn leaves its socket to the caller.
func (c *Conn) Close() error { return c.c.Close() }

func newConn(c rtconn.Conn) *Conn { return &Conn{c: c} }

// Add installs r. The kernel does not check for duplicates: adding the same
// rule twice forwards every frame twice, so List first when unsure. If r has
// a UID that an existing rule has, the kernel updates that rule's
// modifications instead (see Rule.UID).
func (c *Conn) Add(r Rule) error {
	return c.change("add", rtmNewRoute, r)
}

// Delete removes the first rule that matches r exactly (see Rule.Equal).
// If none does, the error wraps ErrNoSuchRule and unix.EINVAL.
func (c *Conn) Delete(r Rule) error {
	return c.change("delete", rtmDelRoute, r)
}

func (c *Conn) change(op string, typ nl.HeaderType, r Rule) error {
	// Both indexes 0 would make a delete a flush: Validate rules that out.
	if err := r.Validate(); err != nil {
		return err
	}
	r.Handled, r.Dropped, r.Deleted = 0, 0, 0
	b, err := r.marshal()
	if err != nil {
		return err
	}
	if _, err := c.c.Execute(typ, nl.Acknowledge, b); err != nil {
		return kernelError(op, &r, err)
	}
	return nil
}

// Flush deletes every can-gw rule in the Conn's network namespace,
// including rules other programs added. Use it only in a namespace you own.
func (c *Conn) Flush() error {
	// A delete with both interface indexes 0 is the kernel's flush.
	ae := nl.NewAttributeEncoder()
	ae.Uint32(cgwSrcIf, 0)
	ae.Uint32(cgwDstIf, 0)
	attrs, err := ae.Encode()
	if err != nil {
		return fmt.Errorf("cangw: flush: %w", err)
	}
	if _, err := c.c.Execute(rtmDelRoute, nl.Acknowledge, append(header(0), attrs...)); err != nil {
		return kernelError("flush", nil, err)
	}
	return nil
}

// List returns every rule in the Conn's network namespace, newest first
// (the kernel's order), with their counters. It needs no privileges.
func (c *Conn) List() ([]Rule, error) {
	msgs, err := c.c.Execute(rtmGetRoute, nl.Dump, header(0))
	if err != nil {
		return nil, kernelError("list", nil, err)
	}
	rules := make([]Rule, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != rtmNewRoute {
			continue
		}
		var r Rule
		if err := r.UnmarshalBinary(m.Data); err != nil {
			// Without can-gw the kernel hands an AF_CAN route dump to
			// rtnl_dump_all, which answers with every other family's routes.
			if errors.Is(err, errNotCAN) {
				return nil, fmt.Errorf("cangw: list: %w (the kernel answered with other families' routes)", ErrNotLoaded)
			}
			return nil, fmt.Errorf("cangw: list: %w", err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}
