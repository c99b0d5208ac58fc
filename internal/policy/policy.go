// Package policy is the admin's word on CAN access: which containers may use
// which host buses, in which direction, with which ids each way, and how
// fast they may send. It reads the config file (default
// /etc/kanto-can/config.json, see docs/policy.md) and resolves a request
// against it: a request can narrow what the policy grants, never widen it.
//
// Without a config file there is no policy: every container may use every
// bus both ways with every id, as with the manual recipe.
package policy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/request"
)

// DefaultPath is where the config file is looked for.
const DefaultPath = "/etc/kanto-can/config.json"

// ManyRules is the number of can-gw rules per direction above which the
// admin is told that a list is expensive (every rule is checked per frame,
// except exact ids, which the kernel looks up in O(1)).
const ManyRules = 64

// Policy is a validated config file.
type Policy struct {
	// Buses are the host buses containers may be given.
	Buses map[string]Bus
	// Containers are checked in order; the first whose Match has a pattern
	// matching the container's id or name applies.
	Containers []Container
	// Default applies to containers no entry matches (and to targets named
	// by pid or path); nil grants nothing.
	Default *Access
	// Warnings for the admin (e.g. lists that compile to many rules).
	Warnings []string
}

// Bus is what the policy says of a host bus.
type Bus struct {
	FD request.FDMode
	// Virtual: a vcan that kanto-can creates when a container first asks
	// for it, so containers can talk to each other without hardware.
	Virtual bool
	// Bridge: when kanto-can-daemon bridges the bus into containers
	// instead of vxcan and can-gw (request.BridgeMode).
	Bridge request.BridgeMode
}

// Container is an entry for some containers.
type Container struct {
	Match []string // glob patterns (path.Match) for Kanto names or ids
	Access
}

// Access is what a container may use: a grant per host bus.
type Access struct {
	Buses map[string]Grant
}

// Grant is what a container may do on one bus.
type Grant struct {
	Dir    request.Direction
	RX, TX *canid.List // nil = all ids
	TxRate *request.Rate
}

// For returns the access of a container known by these names (its Kanto
// name, its id): the first matching entry, else the default.
func (p *Policy) For(names ...string) (*Access, string) {
	for i, c := range p.Containers {
		for _, pat := range c.Match {
			for _, n := range names {
				if ok, _ := path.Match(pat, n); ok && n != "" {
					return &p.Containers[i].Access, fmt.Sprintf("containers[%d] (%q)", i, pat)
				}
			}
		}
	}
	if p.Default != nil {
		return p.Default, "default"
	}
	return nil, ""
}

// Resolve checks a request against the policy and fills in what it left
// open: what it returns is all an attach accepts. With a nil policy (no
// file) the request is granted as it is. names are the container's Kanto
// name and id, the one for messages first (none for a pid or path target).
func (p *Policy) Resolve(names []string, req []request.Bus) (Granted, error) {
	if p == nil {
		return Granted{buses: slices.Clone(req)}, nil
	}
	who := "this container"
	if len(names) > 0 && names[0] != "" {
		who = "container " + names[0]
	}
	access, _ := p.For(names...)
	out := make([]request.Bus, len(req))
	for i, b := range req {
		bus, known := p.Buses[b.Host]
		if !known {
			return Granted{}, fmt.Errorf("policy: bus %s is not one of the buses for containers (%s)", b.Host, strings.Join(p.busNames(), ", "))
		}
		var g Grant
		var ok bool
		if access != nil {
			g, ok = access.Buses[b.Host]
		}
		if !ok {
			return Granted{}, fmt.Errorf("policy: %s may not use bus %s", who, b.Host)
		}
		r, err := narrow(b, g, bus.FD)
		if err != nil {
			return Granted{}, fmt.Errorf("policy: %s, bus %s: %w", who, b.Host, err)
		}
		r.Virtual, r.Bridge = bus.Virtual, bus.Bridge
		out[i] = r
	}
	return Granted{buses: out}, nil
}

// narrow applies a grant to a requested bus.
func narrow(b request.Bus, g Grant, fd request.FDMode) (request.Bus, error) {
	if !b.DirSet {
		b.Dir = g.Dir
	}
	if (b.Dir.Receives() && !g.Dir.Receives()) || (b.Dir.Transmits() && !g.Dir.Transmits()) {
		return b, fmt.Errorf("dir=%s asked, only dir=%s granted", b.Dir, g.Dir)
	}
	var err error
	if b.RX, err = narrowIDs("rx", b.RX, g.RX, b.Dir.Receives()); err != nil {
		return b, err
	}
	if b.TX, err = narrowIDs("tx", b.TX, g.TX, b.Dir.Transmits()); err != nil {
		return b, err
	}
	switch {
	case fd == request.FDOff && b.FDSet && b.FD == request.FDOn:
		return b, fmt.Errorf("fd=on asked, the bus is configured fd=off")
	case fd == request.FDOff:
		b.FD = request.FDOff
	case fd == request.FDOn && !b.FDSet:
		b.FD = request.FDOn
	}
	if b.Dir.Transmits() {
		b.TxRate = g.TxRate
	}
	return b, nil
}

func narrowIDs(key string, asked, granted *canid.List, used bool) (*canid.List, error) {
	if !used {
		return nil, nil
	}
	if granted == nil {
		return asked, nil
	}
	if asked == nil {
		return granted, nil
	}
	if miss := granted.Uncovered(*asked); len(miss.Items) > 0 {
		return nil, fmt.Errorf("%s ids %s not granted (granted: %s)", key, miss, granted)
	}
	return asked, nil
}

func (p *Policy) busNames() []string {
	names := make([]string, 0, len(p.Buses))
	for n := range p.Buses {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
