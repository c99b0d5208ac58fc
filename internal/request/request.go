// Package request parses what a user asks for: which host CAN buses a
// container gets, under which name, in which direction, with which ids.
//
// One bus is written as
//
//	HOSTBUS[:INSIDE][,dir=both|rx|tx][,fd=auto|on|off][,rx=IDS][,tx=IDS][,optional]
//
// INSIDE is the interface name inside the container (default: HOSTBUS).
// dir is seen from the container: rx = it only receives from the bus,
// tx = it only transmits to the bus (rx-only and tx-only are accepted too).
// IDS is a list of ids, ranges and id/masks in can-utils notation (package
// canid); the list runs until the next key=value, so
// "can0,rx=7DF,7E8,tx=7E0" receives 7DF and 7E8 and transmits 7E0.
// fd=auto follows the host bus: an FD bus (MTU 72) forwards classic and FD
// frames, a classic bus (MTU 16) classic only. A bus is required unless
// marked optional: a missing optional bus still gets its inside interface,
// and routing once the bus appears.
//
// A whole request (the KANTO_CAN environment variable of a container, see
// [ParseList]) is several buses separated by ";".
package request

import (
	"fmt"
	"strings"

	"github.com/kanto-can/kanto-can/internal/canid"
)

// Direction says which way frames may flow, seen from the container.
type Direction int

const (
	Both   Direction = iota // bus -> container and container -> bus
	RxOnly                  // bus -> container only
	TxOnly                  // container -> bus only
)

func (d Direction) String() string {
	switch d {
	case RxOnly:
		return "rx"
	case TxOnly:
		return "tx"
	default:
		return "both"
	}
}

// Receives reports whether frames flow from the bus to the container.
func (d Direction) Receives() bool { return d != TxOnly }

// Transmits reports whether frames flow from the container to the bus.
func (d Direction) Transmits() bool { return d != RxOnly }

// FDMode says whether CAN FD frames are forwarded.
type FDMode int

const (
	FDAuto FDMode = iota // follow the host bus's MTU
	FDOn                 // require an FD bus
	FDOff                // classic frames only, even on an FD bus
)

func (m FDMode) String() string {
	switch m {
	case FDOn:
		return "on"
	case FDOff:
		return "off"
	default:
		return "auto"
	}
}

// ParseDirection reads both, rx (rx-only) or tx (tx-only).
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "both":
		return Both, nil
	case "rx", "rx-only":
		return RxOnly, nil
	case "tx", "tx-only":
		return TxOnly, nil
	}
	return Both, fmt.Errorf("%q: want both, rx or tx", s)
}

// ParseFDMode reads auto, on or off.
func ParseFDMode(s string) (FDMode, error) {
	switch s {
	case "auto":
		return FDAuto, nil
	case "on":
		return FDOn, nil
	case "off":
		return FDOff, nil
	}
	return FDAuto, fmt.Errorf("%q: want auto, on or off", s)
}

// MaxIfNameLen is the kernel's limit on interface names (IFNAMSIZ - 1).
const MaxIfNameLen = 15

// Bus is one requested bus. RX and TX nil mean "all ids".
type Bus struct {
	Host   string
	Inside string
	Dir    Direction
	FD     FDMode
	RX, TX *canid.List
	// Optional: a missing host bus is not an error.
	Optional bool
	// DirSet and FDSet tell an explicit dir= or fd= from the default, so a
	// policy can fill in what the request left open.
	DirSet, FDSet bool
	// TxRate limits what the container may send; set by the admin's
	// policy, never by a request.
	TxRate *Rate
	// Virtual: the bus is a vcan that kanto-can makes when missing and on
	// which containers hear each other; set by the policy only.
	Virtual bool
	// Bridge says when the container's interface may be a vcan served by
	// kanto-can-daemon instead of a vxcan pair; set by the policy only.
	Bridge BridgeMode
}

// BridgeMode says when an attachment is bridged by kanto-can-daemon (a vcan
// in the container, CAN_RAW sockets on both sides) rather than made of a
// vxcan pair and can-gw rules: docs/design.md, "Bridge mode".
type BridgeMode int

const (
	BridgeAuto   BridgeMode = iota // only when the kernel has no vxcan
	BridgeNever                    // fail where the kernel has no vxcan
	BridgeAlways                   // always bridge
)

func (m BridgeMode) String() string {
	switch m {
	case BridgeNever:
		return "never"
	case BridgeAlways:
		return "always"
	}
	return "auto"
}

// ParseBridgeMode reads auto, never or always.
func ParseBridgeMode(s string) (BridgeMode, error) {
	for _, m := range []BridgeMode{BridgeAuto, BridgeNever, BridgeAlways} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("bridge mode %q: want auto, never or always", s)
}

// Rate is a transmit rate limit: frames per second, and a burst of frames
// that may go at once.
type Rate struct {
	FramesPerSecond uint64
	Burst           uint64
}

func (r Rate) String() string { return fmt.Sprintf("%d/s burst %d", r.FramesPerSecond, r.Burst) }

func (b Bus) String() string {
	s := b.Host
	if b.Inside != b.Host {
		s += ":" + b.Inside
	}
	s += ",dir=" + b.Dir.String() + ",fd=" + b.FD.String()
	if b.RX != nil {
		s += ",rx=" + b.RX.String()
	}
	if b.TX != nil {
		s += ",tx=" + b.TX.String()
	}
	if b.Optional {
		s += ",optional"
	}
	return s
}

// ParseBus parses one bus in the grammar of the package comment.
func ParseBus(spec string) (Bus, error) {
	b, err := parseBus(spec)
	if err != nil {
		return Bus{}, fmt.Errorf("bus %q: %w", spec, err)
	}
	return b, nil
}

func parseBus(spec string) (Bus, error) {
	tokens := strings.Split(spec, ",")
	host, inside, hasInside := strings.Cut(tokens[0], ":")
	if err := CheckIfName("host bus", host); err != nil {
		return Bus{}, err
	}
	if !hasInside {
		inside = host
	}
	if err := CheckIfName("inside name", inside); err != nil {
		return Bus{}, err
	}
	b := Bus{Host: host, Inside: inside}
	seen := map[string]bool{}
	var list *[]string // the id list that bare tokens continue
	var rx, tx []string
	for _, tok := range tokens[1:] {
		key, val, isKV := strings.Cut(tok, "=")
		if !isKV && (tok == "optional" || tok == "required") {
			// Not ids: neither word is hexadecimal.
			if seen["optional"] {
				return Bus{}, fmt.Errorf("optional/required given twice")
			}
			seen["optional"] = true
			b.Optional = tok == "optional"
			list = nil
			continue
		}
		if !isKV {
			if list == nil {
				return Bus{}, fmt.Errorf("%q is not key=value (keys: dir, fd, rx, tx; words: optional, required)", tok)
			}
			*list = append(*list, tok)
			continue
		}
		if seen[key] {
			return Bus{}, fmt.Errorf("%s given twice", key)
		}
		seen[key] = true
		list = nil
		switch key {
		case "dir":
			b.DirSet = true
			d, err := ParseDirection(val)
			if err != nil {
				return Bus{}, fmt.Errorf("dir=%w", err)
			}
			b.Dir = d
		case "fd":
			b.FDSet = true
			m, err := ParseFDMode(val)
			if err != nil {
				return Bus{}, fmt.Errorf("fd=%w", err)
			}
			b.FD = m
		case "rx":
			rx = []string{val}
			list = &rx
		case "tx":
			tx = []string{val}
			list = &tx
		default:
			return Bus{}, fmt.Errorf("unknown key %q (keys: dir, fd, rx, tx; words: optional, required)", key)
		}
	}
	var err error
	if b.RX, err = parseIDs("rx", rx); err != nil {
		return Bus{}, err
	}
	if b.TX, err = parseIDs("tx", tx); err != nil {
		return Bus{}, err
	}
	if b.RX != nil && !b.Dir.Receives() {
		return Bus{}, fmt.Errorf("rx ids given, but dir=%s receives nothing", b.Dir)
	}
	if b.TX != nil && !b.Dir.Transmits() {
		return Bus{}, fmt.Errorf("tx ids given, but dir=%s transmits nothing", b.Dir)
	}
	return b, nil
}

func parseIDs(key string, items []string) (*canid.List, error) {
	if items == nil {
		return nil, nil
	}
	l, err := canid.ParseList(strings.Join(items, ","))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if _, err := l.Filters(); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &l, nil
}

// CheckIfName validates a Linux interface name.
func CheckIfName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty", what)
	case len(name) > MaxIfNameLen:
		return fmt.Errorf("%s %q is %d bytes, the kernel allows at most %d", what, name, len(name), MaxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%s %q is not a valid interface name", what, name)
	case strings.ContainsAny(name, "/: \t\n=,%"):
		return fmt.Errorf("%s %q contains a character not allowed in interface names", what, name)
	}
	return nil
}

// CheckSet rejects a set of buses that would collide: one host bus twice
// (host ends are unique per container and bus) or one inside name twice.
func CheckSet(buses []Bus) error {
	host := map[string]bool{}
	inside := map[string]bool{}
	for _, b := range buses {
		if host[b.Host] {
			return fmt.Errorf("bus %s requested twice", b.Host)
		}
		if inside[b.Inside] {
			return fmt.Errorf("inside name %s requested twice", b.Inside)
		}
		host[b.Host], inside[b.Inside] = true, true
	}
	return nil
}

// ParseList parses a whole request: buses separated by ";" (white space
// around them is ignored), as in KANTO_CAN="can0;can1:vcan0,dir=rx,optional".
// The buses must not collide (see [CheckSet]).
func ParseList(s string) ([]Bus, error) {
	var buses []Bus
	for i, spec := range strings.Split(s, ";") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		b, err := ParseBus(spec)
		if err != nil {
			return nil, fmt.Errorf("bus %d: %w", i+1, err)
		}
		buses = append(buses, b)
	}
	if len(buses) == 0 {
		return nil, fmt.Errorf("no bus in %q", s)
	}
	if err := CheckSet(buses); err != nil {
		return nil, err
	}
	return buses, nil
}
