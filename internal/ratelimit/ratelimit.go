// Package ratelimit limits how many CAN frames per second a container can
// send onto a bus.
//
// The limit sits on the host end of the container's vxcan pair (the kcan…
// interface), where the container's frames arrive, before can-gw forwards
// them: an ingress qdisc (handle ffff:) holding one matchall filter
// (priority 1, handle 1, protocol all) with a police action that has a
// packet rate, a packet burst and "conform-exceed drop". It is what
//
//	tc qdisc add dev H ingress
//	tc filter add dev H ingress protocol all prio 1 handle 1 matchall \
//		action police pkts_rate RATE pkts_burst BURST conform-exceed drop
//
// makes, built here over netlink (package nl) with no tc process. It needs
// the modules sch_ingress, cls_matchall and act_police (loaded by the
// kernel on demand); Apply's error names the one that is missing, with
// its kernel option.
// Frames over the limit are dropped silently; the sending socket does not
// see an error.
//
// The package assumes it owns the ingress qdisc of the interfaces it is
// used on (kanto-can's own host ends): Remove deletes that qdisc whatever
// else it holds.
//
// Facts the kernel imposes (act_police.c, verified on Linux 6.1):
//   - TCA_POLICE_TBF (struct tc_police) is required even for a packet
//     rate; its byte rate must be zero, as byte and packet rates are
//     mutually exclusive in one action.
//   - TCA_POLICE_PKTRATE64 and TCA_POLICE_PKTBURST64 come together, each
//     at least 1. The burst is not a frame count but the time the rate
//     needs to earn it, in 64 ns psched ticks.
//   - A new police action starts with an empty bucket: the burst becomes
//     available after Burst/FramesPerSecond seconds, the rate at once.
//   - A matchall filter cannot be replaced in place (EEXIST), so Apply on
//     an interface that is limited already replaces the filter's police
//     action by its index (RTM_NEWACTION with NLM_F_REPLACE): the new rate
//     takes effect with no moment without a limit.
package ratelimit

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// Bounds of a Limit. CAN at 1 Mbit/s carries under 20000 frames a second
// and CAN FD under 100000; the ceilings leave room for virtual buses while
// keeping the kernel's arithmetic exact (see burstTicks).
const (
	MaxFramesPerSecond = 1_000_000
	MaxBurst           = 1_000_000
)

// Limit is a packet rate limit: frames per second and a burst (frames).
// Up to Burst frames may pass back to back after a quiet spell; the long-
// run rate is FramesPerSecond.
type Limit struct {
	FramesPerSecond uint64
	Burst           uint64
}

func (l Limit) String() string {
	return fmt.Sprintf("%d frames/s, burst %d", l.FramesPerSecond, l.Burst)
}

// Validate checks that the kernel can enforce l exactly.
func (l Limit) Validate() error {
	switch {
	case l.FramesPerSecond == 0:
		return errors.New("the rate must be at least 1 frame per second")
	case l.FramesPerSecond > MaxFramesPerSecond:
		return fmt.Errorf("rate %d frames/s is above the maximum of %d", l.FramesPerSecond, MaxFramesPerSecond)
	case l.Burst == 0:
		return errors.New("the burst must be at least 1 frame")
	case l.Burst > MaxBurst:
		return fmt.Errorf("burst %d frames is above the maximum of %d", l.Burst, MaxBurst)
	}
	return nil
}

// Apply limits what arrives on the interface ifindex (in c's network
// namespace) to l. It makes the ingress qdisc if there is none, and our
// filter if there is none; if the filter exists its rate is changed in
// place, so calling Apply again never duplicates anything. When it fails
// part way it removes the qdisc if it made it.
func Apply(c *nl.Conn, ifindex int, l Limit) error {
	if err := l.Validate(); err != nil {
		return err
	}
	m, err := newQdiscMsg(ifindex)
	if err != nil {
		return err
	}
	created := true
	if _, err := c.Execute(m); errors.Is(err, unix.EEXIST) {
		created = false
	} else if err != nil {
		return fmt.Errorf("add ingress qdisc on ifindex %d: %w", ifindex, missingQdisc(err))
	}
	if err := applyFilter(c, ifindex, l, created); err != nil {
		if created {
			if rerr := Remove(c, ifindex); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
			}
		}
		return err
	}
	return nil
}

func applyFilter(c *nl.Conn, ifindex int, l Limit, fresh bool) error {
	if !fresh {
		f, ok, err := find(c, ifindex)
		if err != nil {
			return err
		}
		if ok {
			m, err := replaceActionMsg(f.police.index, l)
			if err != nil {
				return err
			}
			if _, err := c.Execute(m); err != nil {
				return fmt.Errorf("replace police action %d on ifindex %d: %w", f.police.index, ifindex, err)
			}
			return nil
		}
	}
	m, err := newFilterMsg(ifindex, l)
	if err != nil {
		return err
	}
	if _, err := c.Execute(m); err != nil {
		return fmt.Errorf("add matchall filter with police action on ifindex %d: %w", ifindex, missingFilter(err))
	}
	return nil
}

// Remove deletes the interface's ingress qdisc, and with it the filter and
// its police action. An interface without one is not an error; an
// interface that does not exist is.
func Remove(c *nl.Conn, ifindex int) error {
	_, err := c.Execute(delQdiscMsg(ifindex))
	// No ingress qdisc: ENOENT ("Cannot find specified qdisc on specified
	// device", or "Cannot delete qdisc with handle of zero" once one was
	// deleted).
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("remove ingress qdisc on ifindex %d: %w", ifindex, err)
}

// Get reads back the limit of the interface's filter: false when it has
// none. The kernel answers a filter dump for an interface that does not
// exist with an empty dump, so such an interface reads as unlimited.
func Get(c *nl.Conn, ifindex int) (Limit, bool, error) {
	f, ok, err := find(c, ifindex)
	if err != nil || !ok {
		return Limit{}, false, err
	}
	return Limit{
		FramesPerSecond: f.police.pktRate,
		Burst:           burstFrames(f.police.pktRate, f.police.pktBurst),
	}, true, nil
}

// Stats returns how many frames the limit let pass and how many it
// dropped since it was made (Apply on a limited interface keeps the
// counts). Both are zero when the interface has no limit.
func Stats(c *nl.Conn, ifindex int) (passed, dropped uint64, err error) {
	f, ok, err := find(c, ifindex)
	if err != nil || !ok {
		return 0, 0, err
	}
	p := f.police
	if p.drops > p.packets {
		return 0, p.drops, nil
	}
	return p.packets - p.drops, p.drops, nil
}

// find dumps the ingress filters and returns ours.
func find(c *nl.Conn, ifindex int) (filter, bool, error) {
	// Without an ingress qdisc the dump is empty.
	msgs, err := c.Execute(dumpFiltersMsg(ifindex))
	if err != nil {
		return filter{}, false, fmt.Errorf("list ingress filters of ifindex %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWTFILTER {
			continue
		}
		f, err := parseFilter(m)
		if err != nil {
			return filter{}, false, fmt.Errorf("ingress filters of ifindex %d: %w", ifindex, err)
		}
		if f.ifindex == ifindex && f.ours() {
			return f, true, nil
		}
	}
	return filter{}, false, nil
}
