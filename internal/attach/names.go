package attach

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"

	"github.com/kanto-can/kanto-can/internal/target"
)

// HostEndPrefix starts the name of every host end kanto-can makes.
const HostEndPrefix = "kcan"

// HostEndName is the host end's name for a target and a host bus: stable,
// unique per (target, bus) and 15 bytes, the kernel's limit: the prefix and
// 44 bits of a 64-bit FNV-1a hash, mixed so that names of one target's
// buses (can0, can1) differ everywhere, not in one digit. (Not a
// cryptographic hash: nothing is secret here, a collision is caught by the
// alias check before any change, and crypto/sha256 would add its packages'
// initialisation to every container start.)
func HostEndName(targetID, bus string) string {
	h := fnv.New64a()
	h.Write([]byte(targetID + "\x00" + bus))
	return fmt.Sprintf("%s%011x", HostEndPrefix, mix(h.Sum64())>>20)
}

// mix is MurmurHash3's 64-bit finaliser: every input bit flips about half
// of the output bits.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// aliasMagic starts the alias of every host end kanto-can makes.
const aliasMagic = "kanto-can v1"

// Meta is what a host end's alias records about its attachment, so that ls
// and detach need no state of their own.
type Meta struct {
	Target    string // Target.ID
	Label     string // how the user named the target
	HostBus   string // host bus name
	Inside    string // interface name inside the target
	Container string // container id, when known
}

// maxAlias is the kernel's limit on IFLA_IFALIAS: IFALIASZ (256) with the
// terminating NUL.
const maxAlias = 255

// Alias encodes m for IFLA_IFALIAS. Every field but the label must fit
// whole (the label is cut to the room left): runc does not cap container
// ids, so a long one gives an error, before anything is made.
func (m Meta) Alias() (string, error) {
	s := fmt.Sprintf("%s target=%s bus=%s in=%s ", aliasMagic,
		url.QueryEscape(m.Target), url.QueryEscape(m.HostBus), url.QueryEscape(m.Inside))
	ctr := ""
	if m.Container != "" {
		ctr = "ctr=" + url.QueryEscape(m.Container) + " "
	}
	s += ctr + "label="
	if len(s) > maxAlias {
		return "", fmt.Errorf("container id of %d bytes is too long: kanto-can keeps it in the host end's alias, where it has room for %d bytes of it (escaped)",
			len(m.Container), maxAlias-(len(s)-len(ctr))-len("ctr= "))
	}
	label := url.QueryEscape(m.Label)
	if room := maxAlias - len(s); len(label) > room {
		label = label[:room]
		if i := strings.LastIndexByte(label, '%'); i >= len(label)-2 && i >= 0 {
			label = label[:i] // don't cut an escape in half
		}
	}
	return s + label, nil
}

// ParseAlias decodes an alias made by Alias; ok is false for anything else,
// so links that merely look like ours are never taken for ours.
func ParseAlias(alias string) (m Meta, ok bool) {
	rest, found := strings.CutPrefix(alias, aliasMagic+" ")
	if !found {
		return Meta{}, false
	}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		v, err := url.QueryUnescape(v)
		if err != nil {
			return Meta{}, false
		}
		switch k {
		case "target":
			m.Target = v
		case "bus":
			m.HostBus = v
		case "in":
			m.Inside = v
		case "label":
			m.Label = v
		case "ctr":
			m.Container = v
		}
	}
	return m, m.Target != "" && m.HostBus != "" && m.Inside != ""
}

// Meta is what the host end made for target t by this plan records.
func (p Plan) Meta(t *target.Target) Meta {
	return Meta{Target: t.ID, Label: t.Label, HostBus: p.Request.Host, Inside: p.Request.Inside, Container: t.Container}
}
