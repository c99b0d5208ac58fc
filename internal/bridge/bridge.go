package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	RX uint64 // bus -> container, delivered to the container's vcan
	TX uint64 // container -> bus, sent
	// RXLost: frames from the bus the daemon could not deliver: its socket
	// on the bus was full (the daemon did not keep up), or the write to
	// the container's vcan failed.
	RXLost uint64
	// TXLimited were dropped by the rate limit; TXLost could not be sent
	// (the bus away, down, or its queue full for a second) or overflowed
	// the daemon's socket on the container's vcan.
	TXLimited, TXLost uint64
}

// Bridge forwards frames between a host bus and a container's vcan until
// the vcan goes (the container's namespace ended, or a detach) or Close.
type Bridge struct {
	spec Spec
	ctr  *canSocket // closed by Close, once every reader has ended

	// mu guards host and closed. A write to the bus holds it for reading,
	// so that the host socket is never closed (and its descriptor reused)
	// under a write.
	mu     sync.RWMutex
	host   *canSocket // nil while the host bus is away
	closed bool
	// busDrops adds the overflows of host sockets closed already.
	busDrops uint64

	rx, tx, txLimited, txLost, rxLost atomic.Uint64
	// stop is an eventfd, signalled by Close, that wakes the readers.
	stop      int
	readers   sync.WaitGroup
	done      chan struct{} // closed when the container side ends
	closeOnce sync.Once
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
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	b := &Bridge{spec: spec, stop: stop, done: make(chan struct{})}
	err = netns.Do(ns, func() (err error) {
		b.ctr, err = openCAN(spec.Inside, spec.FD, spec.TX)
		return err
	})
	if err != nil {
		unix.Close(stop)
		return nil, fmt.Errorf("container side: %w", err)
	}
	if err := b.openHost(); err != nil && !isNoDevice(err) {
		b.ctr.close()
		unix.Close(stop)
		return nil, err
	}
	b.readers.Add(1)
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
	b.readers.Add(1)
	go b.fromBus(h)
	return nil
}

// netNS returns a new descriptor of the container's network namespace,
// asked of the bridge's socket there (SIOCGSKNS).
func (b *Bridge) netNS() (int, error) {
	return unix.IoctlRetInt(b.ctr.fd, unix.SIOCGSKNS)
}

// Close stops the bridge: it wakes its readers, waits for them to end,
// then closes the sockets. It may be called more than once.
func (b *Bridge) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		one := make([]byte, 8)
		binary.NativeEndian.PutUint64(one, 1)
		unix.Write(b.stop, one) // an eventfd write only fails on overflow
		b.readers.Wait()
		b.mu.Lock()
		if b.host != nil {
			b.host.close()
			b.host = nil
		}
		b.mu.Unlock()
		b.ctr.close()
		unix.Close(b.stop)
	})
}

// Counters returns the frames counted so far.
func (b *Bridge) Counters() Counters {
	b.mu.RLock()
	busDrops := b.busDrops
	if b.host != nil {
		busDrops += uint64(atomic.LoadUint32(&b.host.drops))
	}
	b.mu.RUnlock()
	return Counters{RX: b.rx.Load(), TX: b.tx.Load(), TXLimited: b.txLimited.Load(),
		TXLost: b.txLost.Load() + uint64(atomic.LoadUint32(&b.ctr.drops)), RXLost: b.rxLost.Load() + busDrops}
}

// Done is closed when the container's side has ended.
func (b *Bridge) Done() <-chan struct{} { return b.done }

// fromBus copies frames from the host bus to the container until the bus
// goes away (its socket then says ENODEV and is closed; BusChanged opens a
// new one when it is back) or the bridge closes.
func (b *Bridge) fromBus(h *canSocket) {
	defer b.readers.Done()
	buf, oob := make([]byte, canFDMTU), make([]byte, oobSize)
	for {
		n, err := h.read(buf, oob, b.stop)
		switch {
		case errors.Is(err, unix.ENETDOWN): // the bus set down: the socket stays bound
			continue
		case err == errStopped:
			return
		case err != nil:
			b.mu.Lock()
			if b.host == h && !b.closed {
				b.busDrops += uint64(atomic.LoadUint32(&h.drops))
				b.host = nil
				h.close()
			}
			b.mu.Unlock()
			return
		}
		if err := b.ctr.write(buf[:n]); err != nil {
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
	defer b.readers.Done()
	defer close(b.done)
	var limit *bucket
	if r := b.spec.Rate; r != nil {
		limit = newBucket(*r, time.Now())
	}
	buf, oob := make([]byte, canFDMTU), make([]byte, oobSize)
	for {
		n, err := b.ctr.read(buf, oob, b.stop)
		switch {
		case errors.Is(err, unix.ENETDOWN): // the app set its interface down
			continue
		case err != nil:
			return // the vcan is gone (ENODEV), or stopped
		}
		if limit != nil && !limit.take(time.Now()) {
			b.txLimited.Add(1)
			continue
		}
		b.mu.RLock()
		if b.host == nil {
			err = unix.ENODEV
		} else {
			err = sendToBus(b.host, buf[:n])
		}
		b.mu.RUnlock()
		if err != nil {
			b.txLost.Add(1)
			continue
		}
		b.tx.Add(1)
	}
}

// sendToBus writes a frame to the bus, waiting while the controller's
// transmit queue is full (ENOBUFS: the kernel says nothing when it drains):
// the frames behind it wait in the container socket's buffer, as they
// would in the app's own queue on a bus of its own, rather than being lost.
func sendToBus(h *canSocket, frame []byte) error {
	err := h.write(frame)
	for wait := 50 * time.Microsecond; errors.Is(err, unix.ENOBUFS) && wait < time.Second; wait *= 2 {
		time.Sleep(wait) // a back-off
		err = h.write(frame)
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
