//go:build kernel

package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// EnvCannelloni is the path of cannelloni 2.1.2, built on the host by
// test/vm/setup-host.sh into .cache/peers and passed by make bench.
const EnvCannelloni = "KANTO_CAN_CANNELLONI"

// bridgeMetricsAddr is where the benchmark's daemon serves its metrics: its
// bridges' counters tell frames lost before the daemon from those after.
const bridgeMetricsAddr = "127.0.0.1:19731"

// bridgeBusFPS is the most 8-byte classic frames with an 11-bit id the
// emulated Kvaser bus carries in a second at its bitrate
// (kerneltest.KvaserBitrate, 500 kbit/s): 111 bits each without stuffing
// bits, 222 us. The goal for 10 containers is no loss at that rate.
const bridgeBusFPS = 4500

// The paced rates tried, lowest first, until one loses frames.
var bridgeLadder = []int{1000, 2000, bridgeBusFPS, 9000, 18000}

const (
	bridgeFlood     = 10000 // frames of the unpaced flood
	bridgeLatN      = 500   // single frames for the latency figures
	bridgeLatNSlow  = 100   // the same through cannelloni's default 100 ms batching
	bridgeCPURate   = 2000  // frames/s of the stream the CPU is measured over
	bridgeCPUWindow = 5 * time.Second
	bridgeIdle      = 3 * time.Second // idle window before it (the daemon's rule audit, timers)
	bridgeQuiet     = time.Second     // no frame for this long: the rest is lost
)

// A frame's first data byte says which measurement it belongs to; bytes
// 1-4 are its sequence number.
const (
	tagProbe  = 0xFF
	tagLat    = 0x01
	tagLadder = 0x10 // + the step
	tagFlood  = 0x20
	tagCPU    = 0x30
)

// bridgePath is one way of getting a host bus's frames into containers.
type bridgePath struct {
	name  string
	short string // in interface names
	// setup connects n containers (network namespaces, can0 inside) to
	// the host bus; it returns the stat files (/proc/PID/stat or a
	// thread's /proc/self/task/TID/stat) whose CPU counts as the path's:
	// kanto-can-daemon, cannelloni's processes, the relay's threads; none
	// for the gateway, whose work the kernel does in the sender's context.
	setup func(b *testing.B, bus string, n int) (cnt []*kerneltest.NS, stats []string)
}

// BenchmarkBridge compares ways of getting frames from a host bus into a
// container's network namespace: the gateway path (kanto-can attach: a
// vxcan pair and can-gw rules), bridge mode (the policy says "bridge":
// "always": a vcan inside, kanto-can-daemon's CAN_RAW sockets carry the
// frames), a relay floor (relaySetup: the least a hop through user space
// costs), and cannelloni 2.1.2 over UDP as users run it where vxcan is
// missing (a veth pair into the namespace, a vcan inside, one cannelloni on
// each side), with its default batching timeout (-t 100000 us) and the
// tuned -t 1000. The host bus is a classic vcan (MTU 16), not the emulated
// Kvaser bus, which is slow and stalls when flooded; rates are compared
// with a 500 kbit/s classic bus's full rate (bridgeBusFPS).
//
// Per path, with 1 and with 10 containers (namespaces, each with its own
// app socket on can0, a 16 MiB receive buffer): the latency of single
// frames host bus -> app (1 container only: time.Now before the send on
// the host, after the receive inside, same clock), paced rates of 1000 to
// 18000 frames/s for about a second each up to the first that loses a
// frame, an unpaced flood (delivered rate and frames lost), and the CPU
// of a fixed-rate stream: the path's processes' (utime+stime of
// /proc/PID/stat; the daemon's also by schedstat) and the whole guest's
// (/proc/stat, sender and kernel included), less an idle window, per 1000
// frames/s. No assertions on times: figures only.
func BenchmarkBridge(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	cannelloni := os.Getenv(EnvCannelloni)
	if cannelloni == "" {
		b.Fatalf("%s is not set: make bench passes cannelloni (built by make setup into .cache/peers)", EnvCannelloni)
	}
	if _, err := os.Stat(cannelloni); err != nil {
		b.Fatalf("%s: %v (make setup builds it)", EnvCannelloni, err)
	}
	warmDaemonBinary(b)
	forgetStaleRecords(b)

	policy := filepath.Join(b.TempDir(), "policy.json")
	var buses []string
	for _, n := range []int{1, 10} {
		buses = append(buses, fmt.Sprintf("%q: {\"bridge\": \"always\"}", fmt.Sprintf("bbr%d", n)))
	}
	pol := fmt.Sprintf(`{"buses": {%s}, "default": {"buses": {"bbr1": {}, "bbr10": {}}}}`, strings.Join(buses, ", "))
	if err := os.WriteFile(policy, []byte(pol), 0o644); err != nil {
		b.Fatal(err)
	}
	d := kerneltest.StartDaemon(b, daemonWait, "--config="+policy, "--metrics-address="+bridgeMetricsAddr)
	b.Logf("kanto-can-daemon pid %d, policy %s", d.PID(), pol)

	attachAll := func(b *testing.B, bus string, n int, config bool) []*kerneltest.NS {
		var nss []*kerneltest.NS
		for i := 0; i < n; i++ {
			ns := kerneltest.NewNS(b)
			args := []string{"attach", "--netns", ns.Path(), "--bus", bus + ":can0"}
			if config {
				args = append(args, "--config", policy)
			}
			out, errs, code := kerneltest.Run(b, kc, args...)
			if code != 0 {
				b.Fatalf("kanto-can %s: exit %d: %s", strings.Join(args, " "), code, errs)
			}
			if i == 0 {
				b.Logf("kanto-can attach: %s", strings.TrimSpace(out))
			}
			b.Cleanup(func() { detach(b, kc, ns) })
			nss = append(nss, ns)
		}
		return nss
	}
	paths := []bridgePath{
		{name: "vxcan", short: "gw", setup: func(b *testing.B, bus string, n int) ([]*kerneltest.NS, []string) {
			return attachAll(b, bus, n, false), nil
		}},
		{name: "bridge", short: "br", setup: func(b *testing.B, bus string, n int) ([]*kerneltest.NS, []string) {
			return attachAll(b, bus, n, true), []string{fmt.Sprintf("/proc/%d/stat", d.PID())}
		}},
		{name: "relay-floor", short: "rf", setup: relaySetup},
		{name: "cannelloni-t100000", short: "cd", setup: func(b *testing.B, bus string, n int) ([]*kerneltest.NS, []string) {
			return cannelloniSetup(b, cannelloni, bus, n, 100000)
		}},
		{name: "cannelloni-t1000", short: "ct", setup: func(b *testing.B, bus string, n int) ([]*kerneltest.NS, []string) {
			return cannelloniSetup(b, cannelloni, bus, n, 1000)
		}},
	}
	for _, n := range []int{1, 10} {
		for _, p := range paths {
			b.Run(fmt.Sprintf("containers=%d/path=%s", n, p.name), func(b *testing.B) {
				bus := fmt.Sprintf("b%s%d", p.short, n)
				kerneltest.VCAN(b, bus, kerneltest.MTUClassic)
				nss, stats := p.setup(b, bus, n)
				m := newBridgeMeasure(b, bus, nss)
				if p.name == "bridge" {
					m.metrics = "http://" + bridgeMetricsAddr + "/metrics"
					m.daemon = d.PID()
				}
				for i := 0; i < b.N; i++ {
					m.run(b, p, stats, n == 1)
				}
				m.report(b)
			})
		}
	}
}

// cannelloniSetup connects n namespaces to bus the way users do without
// vxcan: per container a veth pair (10.77.N.x/30 each side), a classic vcan
// can0 inside, and two cannelloni processes over UDP, one on the host
// bound to bus, one inside bound to can0, with timeout us of batching.
func cannelloniSetup(b *testing.B, bin, bus string, n int, timeout int) ([]*kerneltest.NS, []string) {
	h := routeHandle(b)
	var nss []*kerneltest.NS
	var stats []string
	for i := 0; i < n; i++ {
		ns := kerneltest.NewNS(b)
		hostIP := net.IPv4(10, 77, byte(i), 1)
		ctrIP := net.IPv4(10, 77, byte(i), 2)
		veth := fmt.Sprintf("%s-v%d", bus, i)
		nsh := ns.Open(b)
		err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: veth}, PeerName: "eth0",
			PeerNamespace: netlink.NsFd(int(nsh))})
		nsh.Close()
		if err != nil {
			b.Fatalf("veth %s: %v", veth, err)
		}
		b.Cleanup(func() {
			if l, err := h.LinkByName(veth); err == nil {
				h.LinkDel(l)
			}
		})
		addrUp(b, h, veth, hostIP)
		addrUp(b, ns.Netlink(b), "eth0", ctrIP)
		ns.Do(b, func() { kerneltest.VCAN(b, "can0", kerneltest.MTUClassic) })
		port := strconv.Itoa(20000 + i)
		t := strconv.Itoa(timeout)
		host := exec.Command(bin, "-I", bus, "-L", hostIP.String(), "-l", port, "-R", ctrIP.String(), "-r", port, "-t", t)
		inside := ns.Command(bin, "-I", "can0", "-L", ctrIP.String(), "-l", port, "-R", hostIP.String(), "-r", port, "-t", t)
		for _, c := range []*exec.Cmd{host, inside} {
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				b.Fatalf("cannelloni: %v", err)
			}
			b.Cleanup(func() {
				c.Process.Kill()
				c.Wait()
				if b.Failed() {
					b.Logf("%s: %s", strings.Join(c.Args, " "), out.String())
				}
			})
			stats = append(stats, fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		}
		nss = append(nss, ns)
	}
	return nss, stats
}

// relaySetup is the floor of any relay in user space: per container a
// vcan can0 inside and a thread of the benchmark's own process that reads
// a blocking CAN_RAW socket on the bus and writes each frame to one on
// can0 (1 MiB receive buffer, as the daemon's). No poller, no scheduler
// hand-off: what a hop through a process costs here at the least. It
// returns the threads' ids for the CPU figures.
func relaySetup(b *testing.B, bus string, n int) ([]*kerneltest.NS, []string) {
	var nss []*kerneltest.NS
	var stats []string
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		ns := kerneltest.NewNS(b)
		ns.Do(b, func() { kerneltest.VCAN(b, "can0", kerneltest.MTUClassic) })
		host, ctr := kerneltest.Open(b, nil, bus), kerneltest.Open(b, ns, "can0")
		if err := unix.SetsockoptInt(host.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20); err != nil {
			b.Fatal(err)
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(host.Fd(), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			b.Fatal(err)
		}
		tid := make(chan int)
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tid <- unix.Gettid()
			var buf [72]byte
			for !stop.Load() {
				n, err := unix.Read(host.Fd(), buf[:])
				if err != nil {
					continue
				}
				unix.Write(ctr.Fd(), buf[:n])
			}
		}()
		stats = append(stats, fmt.Sprintf("/proc/self/task/%d/stat", <-tid))
		nss = append(nss, ns)
	}
	// Before the sockets close (cleanups run last first).
	b.Cleanup(func() { stop.Store(true); wg.Wait() })
	return nss, stats
}

// addrUp gives the link ip/30 and sets it up.
func addrUp(b *testing.B, h *netlink.Handle, name string, ip net.IP) {
	l, err := h.LinkByName(name)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(30, 32)}}); err != nil {
		b.Fatalf("%s: address %s: %v", name, ip, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		b.Fatalf("%s: up: %v", name, err)
	}
}

// bridgeMeasure holds one path's sockets and what it measured.
type bridgeMeasure struct {
	sender *kerneltest.Socket
	apps   []*bridgeApp
	daemon int // kanto-can-daemon's pid, for its schedstat; 0 none
	// metrics: the daemon's, whose bridge counters say where frames were lost.
	metrics string

	lat                  []time.Duration
	latLost              int
	zeroLoss             []float64 // per iteration: the highest paced rate without loss (actual send rate)
	firstLossRate        []float64
	firstLoss            []int
	floodSent, floodGot  []float64 // frames/s: sent, delivered per container (the slowest)
	floodLost            []int
	cpuPaths, cpuGuest   []float64 // ms of CPU per second per 1000 frames/s
	cpuDaemonFine        []float64
	cpuLost              []int
	idlePaths, idleGuest []float64 // ms/s
	streamRate           []float64
	backlogLadder        []uint64 // the kernel's receive backlog drops (softnet_stat) in the paced steps
	backlogFlood         []uint64
	daemonFloodRX        []float64 // frames the daemon forwarded in the flood, and could not
	daemonFloodDropped   []float64
}

// bridgeApp is a container's app: a socket on can0 inside, counting what
// arrives per tag.
type bridgeApp struct {
	s    *kerneltest.Socket
	got  [256]atomic.Int64
	last [256]atomic.Int64 // unix ns of the last frame of each tag
}

func newBridgeMeasure(b *testing.B, bus string, nss []*kerneltest.NS) *bridgeMeasure {
	m := &bridgeMeasure{sender: kerneltest.Open(b, nil, bus)}
	for _, ns := range nss {
		s := kerneltest.Open(b, ns, "can0")
		if err := unix.SetsockoptInt(s.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
			b.Fatal(err)
		}
		m.apps = append(m.apps, &bridgeApp{s: s})
	}
	// Every app hears the bus before anything is measured (cannelloni
	// needs its first datagram each way; the others are there at once).
	deadline := time.Now().Add(30 * time.Second)
	for i, a := range m.apps {
		for {
			sendTagged(b, m.sender.Fd(), tagProbe, uint32(i))
			f, err := a.s.Recv(300 * time.Millisecond)
			if err == nil && f.Data[0] == tagProbe {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("container %d of %s never heard the bus", i, bus)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // the last probes still on their way
	for _, a := range m.apps {
		for {
			if _, err := a.s.Recv(0); err != nil {
				break
			}
		}
	}
	return m
}

// run measures once: latency (with latency), the paced rates, the flood,
// the CPU of a stream.
func (m *bridgeMeasure) run(b *testing.B, p bridgePath, stats []string, latency bool) {
	if latency {
		n := bridgeLatN
		if p.name == "cannelloni-t100000" {
			n = bridgeLatNSlow
		}
		a := m.apps[0]
		for j := 0; j < n; j++ {
			start := time.Now()
			sendTagged(b, m.sender.Fd(), tagLat, uint32(j))
			for {
				// cannelloni over UDP may lose a frame: counted, and
				// the next one sent after a second.
				f, err := a.s.Recv(time.Until(start.Add(time.Second)))
				if errors.Is(err, kerneltest.ErrTimeout) {
					m.latLost++
					b.Logf("%s: latency frame %d lost", p.name, j)
					break
				}
				if err != nil {
					b.Fatalf("latency frame %d: %v", j, err)
				}
				if f.Data[0] == tagLat && binary.LittleEndian.Uint32(f.Data[1:5]) == uint32(j) {
					m.lat = append(m.lat, time.Since(start))
					break
				}
			}
		}
		sorted := append([]time.Duration(nil), m.lat...)
		slices.Sort(sorted)
		b.Logf("%s: latency: fastest %v, median %v, the five slowest %v", p.name, sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-5:])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, a := range m.apps {
		wg.Add(1)
		go func() { defer wg.Done(); a.count(stop) }()
	}
	defer func() { close(stop); wg.Wait() }()

	// Paced rates, up to the first that loses a frame.
	backlog0 := kerneltest.BacklogDrops(b)
	best := 0.0
	for k, rate := range bridgeLadder {
		tag := byte(tagLadder + k)
		count := rate // about a second each
		sent := m.paced(b, tag, rate, count)
		got := m.await(tag, count)
		lost := len(m.apps)*count - got
		b.Logf("%s: paced %d/s (sent at %.0f/s): %d of %d delivered", p.name, rate, sent, got, len(m.apps)*count)
		if lost > 0 {
			m.firstLossRate = append(m.firstLossRate, sent)
			m.firstLoss = append(m.firstLoss, lost)
			break
		}
		best = sent
	}
	m.zeroLoss = append(m.zeroLoss, best)
	backlog1 := kerneltest.BacklogDrops(b)
	m.backlogLadder = append(m.backlogLadder, backlog1-backlog0)

	// The flood: as fast as the sender can.
	rx0, dropped0 := m.daemonRX(b)
	start := time.Now()
	for j := 0; j < bridgeFlood; j++ {
		sendTagged(b, m.sender.Fd(), tagFlood, uint32(j))
	}
	sentRate := float64(bridgeFlood) / time.Since(start).Seconds()
	got := m.await(tagFlood, bridgeFlood)
	slowest := 0.0
	for i, a := range m.apps {
		g := a.got[tagFlood].Load()
		r := float64(g) / time.Unix(0, a.last[tagFlood].Load()).Sub(start).Seconds()
		if g == 0 {
			r = 0
		}
		if i == 0 || r < slowest {
			slowest = r
		}
	}
	m.floodSent = append(m.floodSent, sentRate)
	m.floodGot = append(m.floodGot, slowest)
	m.floodLost = append(m.floodLost, len(m.apps)*bridgeFlood-got)
	m.backlogFlood = append(m.backlogFlood, kerneltest.BacklogDrops(b)-backlog1)
	if m.metrics != "" {
		rx1, dropped1 := m.daemonRX(b)
		m.daemonFloodRX = append(m.daemonFloodRX, rx1-rx0)
		m.daemonFloodDropped = append(m.daemonFloodDropped, dropped1-dropped0)
		b.Logf("%s: in the flood the daemon forwarded %.0f frames and could not write %.0f", p.name, rx1-rx0, dropped1-dropped0)
	}
	b.Logf("%s: flood sent at %.0f/s, the slowest container got %.0f/s, %d of %d delivered", p.name, sentRate, slowest, got, len(m.apps)*bridgeFlood)

	// CPU: an idle window, then a stream at a fixed rate.
	cpu := func() (paths, guest, fine time.Duration) {
		for _, f := range stats {
			paths += statCPU(b, f)
		}
		if m.daemon != 0 {
			fine = cpuTimeFine(b, m.daemon)
		}
		return paths, guestBusy(b), fine
	}
	p0, g0, f0 := cpu()
	t0 := time.Now()
	time.Sleep(bridgeIdle)
	p1, g1, f1 := cpu()
	t1 := time.Now()
	idle := t1.Sub(t0).Seconds()
	count := bridgeCPURate * int(bridgeCPUWindow/time.Second)
	rate := m.paced(b, tagCPU, bridgeCPURate, count)
	got = m.await(tagCPU, count)
	p2, g2, f2 := cpu()
	win := time.Since(t1).Seconds()
	idleP, idleG := ms(p1-p0)/idle, ms(g1-g0)/idle
	per := func(d time.Duration, idleRate float64) float64 {
		return (ms(d)/win - idleRate) / (rate / 1000)
	}
	m.idlePaths = append(m.idlePaths, idleP)
	m.idleGuest = append(m.idleGuest, idleG)
	m.streamRate = append(m.streamRate, rate)
	m.cpuPaths = append(m.cpuPaths, per(p2-p1, idleP))
	m.cpuGuest = append(m.cpuGuest, per(g2-g1, idleG))
	m.cpuLost = append(m.cpuLost, len(m.apps)*count-got)
	if m.daemon != 0 {
		m.cpuDaemonFine = append(m.cpuDaemonFine, per(f2-f1, ms(f1-f0)/idle))
	}
}

// statCPU is utime + stime of a stat file of /proc (a process's or a
// thread's): the fields after the command name, which is in parentheses,
// start with the state (field 3); utime and stime are fields 14 and 15.
func statCPU(b *testing.B, path string) time.Duration {
	s, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	i := strings.LastIndexByte(string(s), ')')
	f := strings.Fields(string(s[i+1:]))
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// daemonRX sums the daemon's bridges' counters bus -> container:
// forwarded, and dropped (its socket on the bus full, or the write to the
// container's vcan failed).
func (m *bridgeMeasure) daemonRX(b *testing.B) (handled, dropped float64) {
	if m.metrics == "" {
		return 0, 0
	}
	fam := kerneltest.Scrape(b, m.metrics)["kanto_can_frames_total"]
	for _, s := range fam.GetMetric() {
		l := map[string]string{}
		for _, p := range s.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["direction"] != "rx" {
			continue
		}
		switch l["result"] {
		case "handled":
			handled += s.GetCounter().GetValue()
		case "dropped":
			dropped += s.GetCounter().GetValue()
		}
	}
	return handled, dropped
}

// paced sends count frames of tag at rate frames/s (those due are sent at
// each wake-up) and returns the rate it achieved.
func (m *bridgeMeasure) paced(b *testing.B, tag byte, rate, count int) float64 {
	start := time.Now()
	for j := 0; j < count; j++ {
		due := start.Add(time.Duration(j) * time.Second / time.Duration(rate))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		sendTagged(b, m.sender.Fd(), tag, uint32(j))
	}
	// Frames 0 .. count-1: count-1 intervals.
	return float64(count-1) / time.Since(start).Seconds()
}

// await waits until every app has count frames of tag, or none arrived
// for bridgeQuiet; it returns what arrived in all.
func (m *bridgeMeasure) await(tag byte, count int) int {
	total := func() int {
		s := 0
		for _, a := range m.apps {
			s += int(a.got[tag].Load())
		}
		return s
	}
	last, since := -1, time.Now()
	for {
		t := total()
		if t >= count*len(m.apps) {
			return t
		}
		if t != last {
			last, since = t, time.Now()
		} else if time.Since(since) > bridgeQuiet {
			return t
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mmsghdr is struct mmsghdr, for recvmmsg.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// count reads the app's socket until stop, counting frames per tag. It
// reads up to 64 frames a system call (recvmmsg, a 100 ms SO_RCVTIMEO so
// that it sees stop) and, having emptied the socket, waits 5 ms before
// the next read (the socket's 16 MiB hold far more): the apps' own cost is
// not what is measured, and on two emulated CPUs ten apps woken for every
// frame would leave little for the paths themselves.
func (a *bridgeApp) count(stop <-chan struct{}) {
	const vlen = 64
	fd := a.s.Fd()
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var bufs [vlen][72]byte
	var iov [vlen]unix.Iovec
	var msgs [vlen]mmsghdr
	for i := range msgs {
		iov[i].Base = &bufs[i][0]
		iov[i].SetLen(len(bufs[i]))
		msgs[i].hdr.Iov = &iov[i]
		msgs[i].hdr.SetIovlen(1)
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), vlen,
			unix.MSG_WAITFORONE, 0, 0)
		if errno != 0 {
			continue
		}
		now := time.Now().UnixNano()
		for i := 0; i < int(r); i++ {
			if msgs[i].n < 9 {
				continue
			}
			tag := bufs[i][8]
			a.got[tag].Add(1)
			a.last[tag].Store(now)
		}
		if r < vlen {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// sendTagged writes one 8-byte classic frame (id 0x123: tag, seq, 3 bytes
// of padding), retrying while the queue is full.
func sendTagged(b *testing.B, fd int, tag byte, seq uint32) {
	var buf [16]byte // struct can_frame
	binary.NativeEndian.PutUint32(buf[0:], 0x123)
	buf[4] = 8
	buf[8] = tag
	binary.LittleEndian.PutUint32(buf[9:], seq)
	for {
		_, err := unix.Write(fd, buf[:])
		if err == nil {
			return
		}
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR) {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// guestBusy is the guest's CPU time so far, every CPU, not idle (user,
// nice, system, irq, softirq, steal of /proc/stat's cpu line).
func guestBusy(b *testing.B) time.Duration {
	s, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(s), "\n")
	f := strings.Fields(line)
	var sum uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q: %v", line, err)
		}
		sum += v
	}
	return time.Duration(sum) * time.Second / clockTicks
}

func (m *bridgeMeasure) report(b *testing.B) {
	b.ReportMetric(0, "ns/op")
	if len(m.lat) > 0 {
		b.ReportMetric(float64(percentile(m.lat, 0.5).Microseconds()), "us-p50")
		b.ReportMetric(float64(percentile(m.lat, 0.99).Microseconds()), "us-p99")
		b.ReportMetric(float64(len(m.lat)), "latency-samples")
		b.ReportMetric(float64(m.latLost), "latency-frames-lost")
	}
	b.ReportMetric(medianF(m.zeroLoss), "fps-zero-loss")
	if len(m.firstLoss) > 0 {
		b.ReportMetric(medianF(m.firstLossRate), "fps-first-loss")
		b.ReportMetric(float64(m.firstLoss[0]), "lost-at-first-loss")
	}
	b.ReportMetric(medianF(m.floodSent), "fps-flood-sent")
	b.ReportMetric(medianF(m.floodGot), "fps-flood-delivered")
	b.ReportMetric(float64(m.floodLost[0]), "lost-in-flood")
	b.ReportMetric(float64(m.backlogLadder[0]), "backlog-drops-paced")
	b.ReportMetric(float64(m.backlogFlood[0]), "backlog-drops-flood")
	if len(m.daemonFloodRX) > 0 {
		b.ReportMetric(m.daemonFloodRX[0], "daemon-forwarded-in-flood")
		b.ReportMetric(m.daemonFloodDropped[0], "daemon-dropped-in-flood")
	}
	b.ReportMetric(medianF(m.cpuPaths), "path-cpu-ms/s-per-kfps")
	b.ReportMetric(medianF(m.cpuGuest), "guest-cpu-ms/s-per-kfps")
	if len(m.cpuDaemonFine) > 0 {
		b.ReportMetric(medianF(m.cpuDaemonFine), "daemon-schedstat-ms/s-per-kfps")
	}
	b.ReportMetric(medianF(m.idlePaths), "path-cpu-ms/s-idle")
	b.ReportMetric(medianF(m.idleGuest), "guest-cpu-ms/s-idle")
	b.ReportMetric(medianF(m.streamRate), "fps-cpu-stream")
	b.ReportMetric(float64(m.cpuLost[0]), "lost-in-cpu-stream")
}
