package bridge

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/netns"
	"github.com/kanto-can/kanto-can/internal/request"
)

// Spec is one bridged attachment: what the daemon reads from its record.
type Spec struct {
	Key     string // the attachment's record (its host end name)
	NetNS   string // a path to the container's network namespace
	Target  string // that namespace's id (netns:INODE), checked on open
	Inside  string // the container's vcan
	HostBus string
	FD      bool // CAN FD frames pass (the vcan's MTU is 72)
	// RX and TX are what may pass each way as kernel filters: nil every
	// id, empty none.
	RX, TX []unix.CanFilter
	Rate   *request.Rate // transmit limit; nil none
}

// Counters are a bridge's frames, each way.
type Counters struct {
	RX uint64 // bus -> container, delivered
	TX uint64 // container -> bus, sent
	// TXLimited were dropped by the rate limit; TXLost could not be sent
	// (the bus away, down, or its queue full).
	TXLimited, TXLost uint64
	RXLost            uint64 // could not be written to the container's vcan
}

// Bridge forwards frames between a host bus and a container's vcan until
// the vcan goes (the container's namespace ended, or a detach) or Close.
type Bridge struct {
	spec Spec
	ctr  *os.File

	mu     sync.Mutex
	host   *os.File // nil while the host bus is away
	closed bool

	rx, tx, txLimited, txLost, rxLost atomic.Uint64
	done                              chan struct{} // closed when the container side ends
}

// open makes both sockets; the host bus may be missing (its socket comes
// with BusChanged).
func open(spec Spec) (*Bridge, error) {
	ns, err := unix.Open(spec.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container network namespace: %w", err)
	}
	defer unix.Close(ns)
	var st unix.Stat_t
	if err := unix.Fstat(ns, &st); err != nil {
		return nil, fmt.Errorf("container network namespace: %w", err)
	}
	if id := fmt.Sprintf("netns:%d", st.Ino); id != spec.Target {
		return nil, fmt.Errorf("container network namespace is gone (%s is now %s, not %s)", spec.NetNS, id, spec.Target)
	}
	b := &Bridge{spec: spec, done: make(chan struct{})}
	err = netns.Do(ns, func() (err error) {
		b.ctr, err = openCAN(spec.Inside, spec.FD, spec.TX)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("container side: %w", err)
	}
	if err := b.openHost(); err != nil && !isNoDevice(err) {
		b.ctr.Close()
		return nil, err
	}
	go b.fromContainer()
	return b, nil
}

// openHost opens the host bus's socket if it is not open; ENODEV while
// the bus is away.
func (b *Bridge) openHost() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.host != nil || b.closed {
		return nil
	}
	h, err := openCAN(b.spec.HostBus, b.spec.FD, b.spec.RX)
	if err != nil {
		return fmt.Errorf("host side: %w", err)
	}
	b.host = h
	go b.fromBus(h)
	return nil
}

// netNS returns a new descriptor of the container's network namespace,
// asked of the bridge's socket there (SIOCGSKNS).
func (b *Bridge) netNS() (int, error) {
	rc, err := b.ctr.SyscallConn()
	if err != nil {
		return -1, err
	}
	ns := -1
	cerr := rc.Control(func(fd uintptr) { ns, err = unix.IoctlRetInt(int(fd), unix.SIOCGSKNS) })
	if cerr != nil {
		return -1, cerr
	}
	return ns, err
}

// Close stops the bridge.
func (b *Bridge) Close() {
	b.mu.Lock()
	b.closed = true
	if b.host != nil {
		b.host.Close()
		b.host = nil
	}
	b.mu.Unlock()
	b.ctr.Close()
	<-b.done
}

// Counters returns the frames counted so far.
func (b *Bridge) Counters() Counters {
	return Counters{RX: b.rx.Load(), TX: b.tx.Load(), TXLimited: b.txLimited.Load(), TXLost: b.txLost.Load(), RXLost: b.rxLost.Load()}
}

// Done is closed when the container's side has ended.
func (b *Bridge) Done() <-chan struct{} { return b.done }

// fromBus copies frames from the host bus to the container until the bus
// goes away (its socket then says ENODEV and is closed; BusChanged opens a
// new one when it is back) or the bridge closes.
func (b *Bridge) fromBus(h *os.File) {
	var buf [canFDMTU]byte
	for {
		n, err := h.Read(buf[:])
		switch {
		case errors.Is(err, unix.ENETDOWN):
			continue // the bus was set down; the socket stays bound
		case err != nil:
			b.mu.Lock()
			if b.host == h {
				b.host = nil
				h.Close()
			}
			b.mu.Unlock()
			return
		}
		if _, err := b.ctr.Write(buf[:n]); err != nil {
			b.rxLost.Add(1)
			continue
		}
		b.rx.Add(1)
	}
}

// fromContainer copies frames the container sends (only those its
// transmit filters let the kernel give this socket) to the bus, within
// the rate limit, until the vcan goes or the bridge closes.
func (b *Bridge) fromContainer() {
	defer close(b.done)
	var limit *bucket
	if r := b.spec.Rate; r != nil {
		limit = newBucket(*r, time.Now())
	}
	var buf [canFDMTU]byte
	for {
		n, err := b.ctr.Read(buf[:])
		switch {
		case errors.Is(err, unix.ENETDOWN):
			continue // the app set its interface down
		case err != nil:
			// The vcan is gone (ENODEV) or the bridge closed.
			return
		}
		if limit != nil && !limit.take(time.Now()) {
			b.txLimited.Add(1)
			continue
		}
		b.mu.Lock()
		h := b.host
		b.mu.Unlock()
		if h == nil {
			b.txLost.Add(1)
			continue
		}
		if err := sendToBus(h, buf[:n]); err != nil {
			b.txLost.Add(1)
			continue
		}
		b.tx.Add(1)
	}
}

// sendToBus writes a frame to the bus, waiting while the controller's
// transmit queue is full (ENOBUFS, which the poller does not wait for): the
// frames behind it wait in the container socket's buffer, as they would in
// the app's own queue on a bus of its own, rather than being lost.
func sendToBus(h *os.File, frame []byte) error {
	_, err := h.Write(frame)
	for wait := 50 * time.Microsecond; errors.Is(err, unix.ENOBUFS) && wait < time.Second; wait *= 2 {
		time.Sleep(wait) // a back-off: the kernel says nothing when the queue drains
		_, err = h.Write(frame)
	}
	return err
}

// bucket is a token bucket: Burst frames at once, refilled at
// FramesPerSecond; the kernel's police action in gateway mode.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(r request.Rate, now time.Time) *bucket {
	return &bucket{rate: float64(r.FramesPerSecond), burst: float64(r.Burst), tokens: float64(r.Burst), last: now}
}

// take reports whether a frame may pass at now, and counts it.
func (k *bucket) take(now time.Time) bool {
	k.tokens += now.Sub(k.last).Seconds() * k.rate
	k.last = now
	if k.tokens > k.burst {
		k.tokens = k.burst
	}
	if k.tokens < 1 {
		return false
	}
	k.tokens--
	return true
}

func isNoDevice(err error) bool { return errors.Is(err, unix.ENODEV) }
