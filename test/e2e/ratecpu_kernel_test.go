//go:build kernel

package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// The flooder and its neighbour on one CPU. The police action of a
// transmit rate limit sits at the host end's ingress, after the per-CPU
// receive backlog (vxcan hands each frame on with netif_rx, to the backlog
// of the CPU that sent it), so a container's excess frames are queued on
// that backlog before they are dropped. A well-behaved container whose
// sender runs on the same CPU shares the backlog. Here a limited container
// floods as fast as it can while its neighbour, unlimited, sends a known
// number of frames at a modest rate, both senders pinned to the same CPU:
// every frame of the neighbour must reach the host bus, once and in order,
// while the limit drops the flood's excess.
func TestPolicyRateLimitSameCPU(t *testing.T) {
	kerneltest.Require(t)
	const (
		busName = "cpubus"
		cpu     = 0   // both senders
		rate    = 100 // the flooder's limit, frames per second
		burst   = 10
		sentB   = 200 // the neighbour's frames
		rateB   = 100 // the neighbour's rate, frames per second
		idA     = 0x100
		idA1    = 0x1FF // the flooder's marker, after its flood
		idB     = 0x200
	)
	kerneltest.VCAN(t, busName, kerneltest.MTUClassic)
	limited := writePolicy(t, fmt.Sprintf(`{"buses": {%q: {}}, "default": {"buses": {%q: {"tx_rate": {"frames_per_second": %d, "burst": %d}}}}}`,
		busName, busName, rate, burst))
	unlimited := writePolicy(t, fmt.Sprintf(`{"buses": {%q: {}}, "default": {"buses": {%q: {}}}}`, busName, busName))
	nsA, nsB := kerneltest.NewNS(t), kerneltest.NewNS(t)
	mustKC(t, "attach", "--config", limited, "--netns", nsA.Path(), "--bus", busName+":can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", nsA.Path()) })
	mustKC(t, "attach", "--config", unlimited, "--netns", nsB.Path(), "--bus", busName+":can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", nsB.Path()) })
	hostEndB := ""
	for _, att := range lsAll(t) {
		if att.HostBus == busName && att.TxRate == nil {
			hostEndB = att.HostEnd
		}
	}
	if hostEndB == "" {
		t.Fatal("ls shows no unlimited attachment")
	}

	// The witness on the host bus, with room for everything that may come
	// (at most rate frames/s of the flooder's get through), so that it
	// loses nothing itself.
	bus := kerneltest.Open(t, nil, busName)
	if err := unix.SetsockoptInt(bus.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
		t.Fatal(err)
	}
	a := kerneltest.Open(t, nsA, "can0")
	b := kerneltest.Open(t, nsB, "can0")
	sndbuf, err := unix.GetsockoptInt(a.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	backlogBefore := kerneltest.BacklogDrops(t)
	rxDroppedBefore := rxDropped(t, hostEndB)

	// The flooder: blocking writes as fast as the kernel takes them, until
	// the neighbour is done.
	var stop atomic.Bool
	var sentA, errsA int
	var floodFor time.Duration
	aDone := make(chan struct{})
	go onCPU(t, cpu, func() {
		defer close(aDone)
		start := time.Now()
		defer func() { floodFor = time.Since(start) }()
		for i := 0; !stop.Load(); i++ {
			if sendOnce(a, frame(idA, byte(i))) == nil {
				sentA++
			} else {
				errsA++ // ENOBUFS: the kernel refused it, the sender knows
			}
		}
	})
	// The neighbour: frame i carries i, so the witness can tell which one
	// is missing. The ticker sets the pace, it synchronises nothing. A
	// refused send (the sender is told: not a silent loss) is counted and
	// tried again at the next tick.
	var elapsed time.Duration
	var errsB int
	bDone := make(chan struct{})
	go onCPU(t, cpu, func() {
		defer close(bDone)
		defer stop.Store(true)
		tick := time.NewTicker(time.Second / rateB)
		defer tick.Stop()
		start := time.Now()
		for i := 0; i < sentB; {
			<-tick.C
			if sendOnce(b, frame(idB, byte(i>>8), byte(i))) == nil {
				i++
			} else {
				errsB++
			}
		}
		elapsed = time.Since(start)
	})

	// Read until every frame of the neighbour and the flooder's marker
	// have arrived. The marker goes after the flood, from the same CPU:
	// once it is through, every earlier frame of the flood has passed the
	// police action or been dropped. The police may drop the marker too
	// (its bucket is empty after the flood): then another one goes.
	var gotA, markersSent, markersSeen int
	seenB := make([]int, sentB)
	var orderB []int
	// Each marker is sent from a pinned thread of its own, waited for, and
	// counted if the kernel took it.
	markerDone := make(chan struct{}, 1)
	sendMarker := func() {
		go onCPU(t, cpu, func() {
			if sendOnce(a, frame(idA1)) == nil {
				markersSent++
			}
			markerDone <- struct{}{}
		})
		<-markerDone
	}
	deadline := time.Now().Add(time.Minute)
	for markersSeen == 0 || len(orderB) < sentB {
		select {
		case <-aDone:
			sendMarker()
			aDone = nil
		default:
		}
		f, err := bus.Recv(200 * time.Millisecond)
		if errors.Is(err, kerneltest.ErrTimeout) {
			if time.Now().After(deadline) {
				break
			}
			if aDone == nil && markersSeen == 0 {
				sendMarker()
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case f.ID == idA:
			gotA++
		case f.ID == idA1:
			markersSeen++
		case f.ID == idB && len(f.Data) == 2:
			i := int(binary.BigEndian.Uint16(f.Data))
			if i >= sentB {
				t.Fatalf("neighbour: frame %s was never sent", f)
			}
			seenB[i]++
			orderB = append(orderB, i)
		default:
			t.Fatalf("unexpected frame %s on the bus", f)
		}
	}
	select {
	case <-bDone:
	default:
		stop.Store(true)
		t.Fatalf("the neighbour still sending after a minute: %d of %d frames on the bus", len(orderB), sentB)
	}
	if aDone != nil {
		t.Fatalf("the flooder still sending after a minute (%d frames on the bus)", gotA)
	}
	backlog := kerneltest.BacklogDrops(t) - backlogBefore
	rxDroppedB := rxDropped(t, hostEndB) - rxDroppedBefore
	var passed, dropped uint64
	for _, att := range lsAll(t) {
		if att.HostBus == busName && att.TxRate != nil {
			passed, dropped = att.TxRate.Passed, att.TxRate.Dropped
		}
	}
	t.Logf("flooder: %d frames sent (%d refused, send buffer %d bytes) in %v, %d (+%d of %d markers) on the bus; police: %d passed, %d dropped (%d of the %d frames sent reached it)",
		sentA, errsA, sndbuf, floodFor, gotA, markersSeen, markersSent, passed, dropped, passed+dropped, sentA+markersSent)
	t.Logf("neighbour: %d of %d frames on the bus, sent in %v (%d sends refused and retried); kernel backlog drops during the test: %d, on the neighbour's host end: %d",
		len(orderB), sentB, elapsed, errsB, backlog, rxDroppedB)

	var missing, twice []string
	for i, n := range seenB {
		switch {
		case n == 0:
			missing = append(missing, strconv.Itoa(i))
		case n > 1:
			twice = append(twice, strconv.Itoa(i))
		}
	}
	if len(missing) > 0 {
		t.Errorf("neighbour: %d of %d frames never reached the bus: %s", len(missing), sentB, strings.Join(missing, " "))
	}
	if len(twice) > 0 {
		t.Errorf("neighbour: frames that arrived more than once: %s", strings.Join(twice, " "))
	}
	for k, i := range orderB {
		if k != i {
			t.Errorf("neighbour: frame %d arrived as the %d. frame", i, k+1)
			break
		}
	}
	if markersSeen == 0 {
		t.Errorf("no marker of the flooder's came through the limit (%d sent)", markersSent)
	}

	// The limit did its work: it dropped the excess, let about rate frames
	// per second through (within 10%, plus the burst), and the flood was
	// big enough to mean something.
	allowed := float64(rate)*floodFor.Seconds()*1.1 + burst
	if dropped == 0 {
		t.Errorf("police dropped nothing of %d flooded frames", sentA)
	}
	if float64(passed) > allowed+float64(markersSent) {
		t.Errorf("police let %d frames through in %v (+%d markers), want at most %.0f", passed, floodFor, markersSent, allowed)
	}
	if float64(sentA) < 10*allowed {
		t.Errorf("the flood was too small to test anything: %d frames, the limit lets %.0f through", sentA, allowed)
	}
	if uint64(gotA+markersSeen) > passed {
		t.Errorf("%d frames of the flooder's on the bus, but the police passed only %d", gotA+markersSeen, passed)
	}
}

// rxDropped is an interface's rx_dropped counter: for the host end of a
// vxcan, the frames its peer sent that the backlog had no room for.
func rxDropped(t *testing.T, ifname string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + ifname + "/statistics/rx_dropped")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
