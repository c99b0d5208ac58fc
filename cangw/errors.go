package cangw

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrNoSuchRule is wrapped by Delete's error when the kernel found no
	// rule matching exactly (it answers EINVAL).
	ErrNoSuchRule = errors.New("no such rule (delete needs an exact match: flags, hop limit, uid or else modifications and checksums, src, dst, filter)")
	// ErrNotLoaded is wrapped when the kernel has no can-gw handler: Add,
	// Delete and Flush then fail with EOPNOTSUPP, and a dump request is
	// answered with the routes of the other address families (List detects
	// these; with no routes at all it returns an empty list).
	ErrNotLoaded = errors.New("the can-gw kernel module is not loaded (modprobe can-gw; CONFIG_CAN_GW)")
)

// maxHopsParam is where the kernel shows the module's max_hops parameter.
var maxHopsParam = "/sys/module/can_gw/parameters/max_hops"

// kernelError explains an error the kernel answered to op ("add", "delete",
// "flush", "list"); the errno stays reachable with errors.Is.
func kernelError(op string, r *Rule, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("cangw: %s: changing can-gw rules needs CAP_NET_ADMIN in the initial user namespace: %w", op, err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT),
		errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EPFNOSUPPORT):
		return fmt.Errorf("cangw: %s: %w: %w", op, ErrNotLoaded, err)
	case errors.Is(err, unix.ENODEV) && r != nil:
		return fmt.Errorf("cangw: %s: interface index %d or %d does not exist in this network namespace or is not a CAN interface: %w", op, r.Src, r.Dst, err)
	case errors.Is(err, unix.EINVAL) && op == "delete":
		return fmt.Errorf("cangw: delete: %w: %w", ErrNoSuchRule, err)
	case errors.Is(err, unix.EINVAL) && op == "add" && r != nil:
		return fmt.Errorf("cangw: add: the kernel rejected the rule (%s): %w", addEINVALHint(*r), err)
	}
	return fmt.Errorf("cangw: %s: %w", op, err)
}

// addEINVALHint guesses which of gw.c's EINVAL causes applies: the hop limit
// above max_hops (only known at module load time), or a UID already used by
// a rule with other interfaces or filter. Validate has ruled out the rest.
func addEINVALHint(r Rule) string {
	if r.HopLimit > 1 {
		if b, err := os.ReadFile(maxHopsParam); err == nil {
			return fmt.Sprintf("HopLimit %d exceeds the can-gw module parameter max_hops=%s?", r.HopLimit, strings.TrimSpace(string(b)))
		}
		return fmt.Sprintf("HopLimit %d exceeds the can-gw module parameter max_hops (default 1)?", r.HopLimit)
	}
	if r.UID != 0 {
		return fmt.Sprintf("UID %#x is used by a rule with other interfaces or filter?", r.UID)
	}
	return "invalid argument"
}
