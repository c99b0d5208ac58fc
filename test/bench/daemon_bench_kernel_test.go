//go:build kernel

package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

// daemonWait bounds every wait on the daemon: a reconcile of a few hundred
// attachments takes seconds under emulation. It is a bound, not a sleep.
const daemonWait = 5 * time.Minute

// BenchmarkBusReappear measures how long containers lose their bus when it
// goes away and comes back (a replugged adapter, a reloaded driver, a
// re-created vcan): for N = 1, 10 and 100 attached targets, the time from
// the bus's re-creation to every one of the N containers receiving a frame
// sent on it again, which needs kanto-can-daemon to put the gateway rules
// back. The targets are network namespaces attached with `kanto-can attach
// --netns`: to the daemon they are what containers are (a record and a host
// end each); container start-up is not what is measured here.
//
// The bus is a vcan with the default MTU (72, an FD bus: four rules per
// attachment). Per iteration, with the daemon idle: the bus is deleted, the
// daemon handles that, then the bus is re-created and set up (two netlink
// requests, as `ip link add` and `ip link set up`) and a probe frame is sent
// on it every millisecond until all N inside sockets have one. Reported
// (milliseconds):
//   - flow: re-creation to frames flowing to all N again (median, max), and
//     first-flow: to the first of them receiving one (median);
//   - restored: re-creation to the daemon's log line of the reconcile that
//     put the rules back (event delivery and the reconcile; the log's
//     timestamps have millisecond resolution);
//   - daemon-start: `kanto-can daemon` to "ready", its first reconcile (of
//     every attachment) included;
//   - reconciles: how many reconciles the bus's return set off (median).
func BenchmarkBusReappear(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	forgetStaleRecords(b)
	warmDaemonBinary(b)
	h := routeHandle(b)
	const busName = "rbus"
	newBus(b, h, busName)
	b.Cleanup(func() {
		if l, err := h.LinkByName(busName); err == nil {
			h.LinkDel(l)
		}
	})
	marker := newMarker(b, h, "rmark")

	var inside []*kerneltest.Socket
	for _, n := range []int{1, 10, 100} {
		for len(inside) < n {
			ns := kerneltest.NewNS(b)
			run(b, kc, "attach", "--netns", ns.Path(), "--bus", busName+":can0")
			b.Cleanup(func() { detach(b, kc, ns) })
			inside = append(inside, kerneltest.Open(b, ns, "can0"))
		}
		// A daemon of its own for each N, started with the N attachments
		// in place (attaching while it runs would make it reconcile for
		// every new host end).
		start := time.Now()
		d := kerneltest.StartDaemon(b, daemonWait)
		startup := time.Since(start)
		log := followLog(d)
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			busReappear(b, h, busName, marker, log, inside[:n], startup)
		})
		d.Kill9(b)
	}
}

func busReappear(b *testing.B, h *netlink.Handle, busName string, marker *markerBus, log *daemonLog,
	inside []*kerneltest.Socket, startup time.Duration) {
	// Whatever the start left.
	marker.settle(b, log)

	var first, flow, restored []time.Duration
	var reconciles []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := h.LinkByName(busName)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.LinkDel(l); err != nil {
			b.Fatalf("delete %s: %v", busName, err)
		}
		// The daemon has seen the bus go (the rules went with it).
		marker.settle(b, log)
		for _, s := range inside {
			drain(b, s)
		}
		probeRound++
		tag := probeRound
		from := log.mark()
		t0 := time.Now()
		newBus(b, h, busName)
		sender := kerneltest.Open(b, nil, busName)
		f, all := probe(b, sender, inside, tag, t0)
		first, flow = append(first, f), append(flow, all)
		sender.Close()
		// Let the daemon finish what the bus's return set off; then its
		// log says when the rules were put back.
		to := marker.settle(b, log)
		var restoredAt time.Time
		count := 0
		for j, line := range log.lines(from, to+1) {
			if !strings.Contains(line, "msg=reconciled") {
				continue
			}
			if j < to-from || strings.Contains(line, "bus "+busName) {
				count++
			}
			if strings.Contains(line, "restored=") {
				restoredAt = logTime(b, line)
			}
		}
		if restoredAt.IsZero() {
			b.Fatalf("frames flow again but the daemon logged no restore:\n%s",
				strings.Join(log.lines(from, to+1), "\n"))
		}
		restored = append(restored, restoredAt.Sub(t0))
		reconciles = append(reconciles, float64(count))
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median(first)), "ms-median/first-flow")
	b.ReportMetric(ms(median(flow)), "ms-median/flow")
	b.ReportMetric(ms(slices.Max(flow)), "ms-max/flow")
	b.ReportMetric(ms(median(restored)), "ms-median/restored")
	b.ReportMetric(ms(slices.Max(restored)), "ms-max/restored")
	b.ReportMetric(ms(startup), "ms/daemon-start")
	b.ReportMetric(medianF(reconciles), "reconciles")
}

// probeID is the id of the probe frames; their first four data bytes are
// the round's tag, so frames of earlier rounds still queued are skipped.
const probeID = 0x123

// probeRound numbers the probe rounds (0 is never a round's tag).
var probeRound uint32

// probe sends a probe frame tagged tag on the bus every millisecond until
// each of the inside sockets has received one, and returns the times from
// t0 to the first socket's and to the last socket's first tagged frame.
// Nothing announces that the gateway forwards again, so the bus is probed
// at a fixed cadence: the results are up to a millisecond late.
func probe(b *testing.B, sender *kerneltest.Socket, inside []*kerneltest.Socket, tag uint32, t0 time.Time) (first, last time.Duration) {
	data := binary.BigEndian.AppendUint32(nil, tag)
	pending := append([]*kerneltest.Socket(nil), inside...)
	deadline := t0.Add(daemonWait)
	next := time.Now()
	var firstAt, lastAt time.Time
	buf := make([]byte, 72)
	for len(pending) > 0 {
		now := time.Now()
		if now.After(deadline) {
			b.Fatalf("%d of %d containers got no frame within %v of the bus's return", len(pending), len(inside), daemonWait)
		}
		if !now.Before(next) {
			sender.Send(b, kerneltest.Frame{ID: probeID, Data: data})
			next = now.Add(time.Millisecond)
		}
		fds := make([]unix.PollFd, len(pending))
		for i, s := range pending {
			fds[i] = unix.PollFd{Fd: int32(s.Fd()), Events: unix.POLLIN}
		}
		wait := int((time.Until(next) + time.Millisecond - 1) / time.Millisecond)
		if _, err := unix.Poll(fds, max(wait, 0)); err != nil && !errors.Is(err, unix.EINTR) {
			b.Fatalf("poll: %v", err)
		}
		keep := pending[:0]
		for i, s := range pending {
			got := false
			if fds[i].Revents&unix.POLLIN != 0 {
				got = readTagged(b, s, buf, tag)
			}
			if got {
				lastAt = time.Now()
				if firstAt.IsZero() {
					firstAt = lastAt
				}
			} else {
				keep = append(keep, s)
			}
		}
		pending = keep
	}
	return firstAt.Sub(t0), lastAt.Sub(t0)
}

// readTagged reads what is queued on s and reports whether a probe frame
// with tag was among it.
func readTagged(b *testing.B, s *kerneltest.Socket, buf []byte, tag uint32) bool {
	found := false
	for {
		n, _, err := unix.Recvfrom(s.Fd(), buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return found
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			b.Fatalf("read: %v", err)
		}
		// struct can_frame: id (u32), len, 3 bytes, data.
		if n >= 12 && binary.NativeEndian.Uint32(buf)&unix.CAN_SFF_MASK == probeID &&
			binary.BigEndian.Uint32(buf[8:]) == tag {
			found = true
		}
	}
}

// drain discards what is queued on s.
func drain(b *testing.B, s *kerneltest.Socket) {
	readTagged(b, s, make([]byte, 72), 0)
}

// BenchmarkDaemonResources measures kanto-can-daemon's CPU time (utime +
// stime of /proc/PID/stat, in ms of CPU per second of wall time) and
// resident memory (VmRSS, VmHWM of /proc/PID/status):
//   - at start and while idle, with 100 attachments in place (network
//     namespaces attached with `kanto-can attach --netns`: to the daemon,
//     what containers are);
//   - during storms of 100 real container starts and stops, 10 at a time,
//     started the Kanto way (containerd namespace kanto-cm, runc, kanto-can's
//     prestart and poststop hooks, KANTO_CAN=sbus:can0), the daemon watching
//     containerd's task events: first with the 100 attachments still in
//     place ("-100attached"), then without them: whether a container's
//     events cost the daemon more when there are other attachments.
//
// Reported per storm (medians over b.N storms of each kind): CPU per
// container (start and stop), CPU per second, peak RSS during the storm
// (VmHWM, reset before it), the storm's wall time, the median container
// start (`ctr run --detach`: runc create with the prestart hook, runc
// start), and the number of reconciles. The daemon logs at debug level (one
// line per reconcile), as kerneltest.StartDaemon starts it.
func BenchmarkDaemonResources(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	forgetStaleRecords(b)
	warmDaemonBinary(b)
	h := routeHandle(b)
	const busName, background = "sbus", 100
	kerneltest.VCAN(b, busName, kerneltest.MTUFD)
	marker := newMarker(b, h, "smark")

	const ctrNS, ref = "kanto-cm", "docker.io/kanto-can/storm:1"
	c := ctrtest.StartContainerd(b, ctrtest.WithSnapshotter("native"))
	ctrtest.BuildImage(b, c, ctrNS, ref, map[string]string{"/bin/busybox": "/bin/busybox"})
	spec := ctrtest.Spec{
		Image: ref,
		Args:  []string{"/bin/busybox", "sleep", "600"},
		Env:   []string{"KANTO_CAN=" + busName + ":can0"},
		Hooks: ctrtest.Hooks{
			Prestart: []ctrtest.Hook{{Path: kc, Args: []string{"kanto-can", "hook", "prestart"}}},
			Poststop: []ctrtest.Hook{{Path: kc, Args: []string{"kanto-can", "hook", "poststop"}}},
		},
	}

	var targets []*kerneltest.NS
	for range background {
		ns := kerneltest.NewNS(b)
		run(b, kc, "attach", "--netns", ns.Path(), "--bus", busName+":can0")
		targets = append(targets, ns)
	}
	start := time.Now()
	d := kerneltest.StartDaemon(b, daemonWait, "--containerd-address="+c.Address(), "--namespace="+ctrNS)
	startup := time.Since(start)
	pid := d.PID()
	log := followLog(d)
	// Subscribed to containerd: it reconciles once more after connecting.
	log.await(b, 0, "msg=reconciled", "containerd (re)connected")
	marker.settle(b, log)
	startRSS, startHWM := memory(b, pid)

	// Idle: a measurement window, not a wait for something (the point is
	// that nothing happens).
	const idleWindow = 10 * time.Second
	from := log.mark()
	cpu0, fine0, t0 := cpuTime(b, pid), cpuTimeFine(b, pid), time.Now()
	time.Sleep(idleWindow)
	cpu1, fine1, t1 := cpuTime(b, pid), cpuTimeFine(b, pid), time.Now()
	idleRSS, _ := memory(b, pid)
	idleReconciles := countReconciles(log.lines(from, log.mark()))

	b.ResetTimer()
	loaded := stormFigures{suffix: "-100attached"}
	for i := 0; i < b.N; i++ {
		loaded.measure(b, c, ctrNS, fmt.Sprintf("loaded%d-", i), spec, pid, log, marker)
	}
	b.StopTimer()
	for _, ns := range targets {
		detach(b, kc, ns)
	}
	marker.settle(b, log)
	b.StartTimer()
	alone := stormFigures{}
	for i := 0; i < b.N; i++ {
		alone.measure(b, c, ctrNS, fmt.Sprintf("alone%d-", i), spec, pid, log, marker)
	}
	b.StopTimer()

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(startup), "ms/daemon-start-100")
	b.ReportMetric(startRSS, "MB-rss/after-start")
	b.ReportMetric(startHWM, "MB-peak/start")
	b.ReportMetric(ms(cpu1-cpu0)/t1.Sub(t0).Seconds(), "cpu-ms/s-idle")
	b.ReportMetric(float64((fine1-fine0).Microseconds())/t1.Sub(t0).Seconds(), "cpu-us/s-idle-schedstat")
	b.ReportMetric(idleRSS, "MB-rss/idle")
	b.ReportMetric(float64(idleReconciles), "reconciles/idle")
	loaded.report(b)
	alone.report(b)
}

// Storms: containers started and stopped, parallel at a time.
const stormContainers, stormParallel = 100, 10

// stormFigures are the figures of storms of one kind.
type stormFigures struct {
	suffix                         string
	perCtr, rate, peak, wall, recs []float64
	starts                         []time.Duration
}

// measure runs a storm and takes the daemon's figures: from just before
// the first start to the end of the reconciles the storm set off.
func (f *stormFigures) measure(b *testing.B, c *ctrtest.Containerd, ns, prefix string, spec ctrtest.Spec,
	pid int, log *daemonLog, marker *markerBus) {
	resetPeakRSS(b, pid)
	from := log.mark()
	cpuStart, tStart := cpuTime(b, pid), time.Now()
	starts, err := storm(b, c, ns, prefix, spec, stormContainers, stormParallel)
	if err != nil {
		b.Fatal(err)
	}
	wall := time.Since(tStart)
	// The daemon has handled the storm's link events. (containerd's task
	// events come another way and may trail by a little.)
	to := marker.settle(b, log)
	cpu, elapsed := cpuTime(b, pid)-cpuStart, time.Since(tStart)
	_, hwm := memory(b, pid)
	f.perCtr = append(f.perCtr, ms(cpu)/stormContainers)
	f.rate = append(f.rate, ms(cpu)/elapsed.Seconds())
	f.peak = append(f.peak, hwm)
	f.wall = append(f.wall, wall.Seconds())
	f.recs = append(f.recs, float64(countReconciles(log.lines(from, to))))
	f.starts = append(f.starts, starts...)
}

func (f *stormFigures) report(b *testing.B) {
	b.ReportMetric(medianF(f.perCtr), "cpu-ms/container"+f.suffix)
	b.ReportMetric(medianF(f.rate), "cpu-ms/s-storm"+f.suffix)
	b.ReportMetric(medianF(f.peak), "MB-peak/storm"+f.suffix)
	b.ReportMetric(medianF(f.wall), "s/storm"+f.suffix)
	b.ReportMetric(ms(median(f.starts)), "ms-median/container-start"+f.suffix)
	b.ReportMetric(medianF(f.recs), "reconciles/storm"+f.suffix)
}

// storm starts and stops n containers, parallel at a time, and returns the
// starts' durations (ctr run --detach: runc create with the prestart hook,
// runc start).
func storm(b *testing.B, c *ctrtest.Containerd, ns, prefix string, spec ctrtest.Spec, n, parallel int) ([]time.Duration, error) {
	var mu sync.Mutex
	var starts []time.Duration
	var errs []error
	ids := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				t := time.Now()
				ct, err := c.Start(b, ns, prefix+strconv.Itoa(i), spec)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					starts = append(starts, d)
				}
				mu.Unlock()
				if ct != nil {
					ct.Stop(b)
				}
			}
		}()
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	return starts, errors.Join(errs...)
}

// daemonLog is a daemon's log, which the benchmark waits on without
// printing every line (b.Log always prints in benchmarks; the Daemon's
// AwaitLog logs what it reads).
type daemonLog struct{ *kerneltest.Lines }

func followLog(d *kerneltest.Daemon) *daemonLog { return &daemonLog{d.Log} }

// mark is the number of lines so far.
func (l *daemonLog) mark() int { return l.Len() }

// lines returns lines [from, to).
func (l *daemonLog) lines(from, to int) []string { return l.Slice(from, to) }

// await waits for the first line from index from on that contains every
// one of want, and returns its index.
func (l *daemonLog) await(b *testing.B, from int, want ...string) int {
	b.Helper()
	line, i := l.AwaitIndex(b, from, daemonWait, func(s string) bool { return s == kerneltest.Exited || kerneltest.ContainsAll(s, want...) })
	if line == kerneltest.Exited {
		b.Fatalf("the daemon exited before logging %q; its last lines:\n%s", want, strings.Join(l.Slice(max(0, i-20), i), "\n"))
	}
	return i
}

// logTime is the timestamp of a line of the daemon's text log
// ("time=2026-11-30T12:00:00.123Z level=...").
func logTime(b *testing.B, line string) time.Time {
	v, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		b.Fatalf("log line without a time: %q", line)
	}
	return t
}

func countReconciles(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, "msg=reconciled") {
			n++
		}
	}
	return n
}

// markerBus is a vcan of the benchmark's own, with no attachment, which it
// re-creates to make the daemon reconcile, as a marker: a bus with a new
// ifindex is a link event the daemon acts on, queued behind every earlier
// one, and the daemon reconciles one run at a time, merging requests that
// arrive meanwhile. Once the reconcile that names the marker is logged,
// every link event before it has been handled.
type markerBus struct {
	h    *netlink.Handle
	name string
}

func newMarker(b *testing.B, h *netlink.Handle, name string) *markerBus {
	b.Cleanup(func() {
		if l, err := h.LinkByName(name); err == nil {
			h.LinkDel(l)
		}
	})
	return &markerBus{h: h, name: name}
}

// settle waits until the daemon has handled every earlier link event, and
// returns the index of the marker's log line.
func (m *markerBus) settle(b *testing.B, log *daemonLog) int {
	b.Helper()
	if l, err := m.h.LinkByName(m.name); err == nil {
		// Its going away sets off nothing: the rules went with it.
		if err := m.h.LinkDel(l); err != nil {
			b.Fatalf("delete %s: %v", m.name, err)
		}
	}
	from := log.mark()
	if err := m.h.LinkAdd(&netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: m.name}, LinkType: "vcan"}); err != nil {
		b.Fatalf("add %s: %v", m.name, err)
	}
	return log.await(b, from, "msg=reconciled", "bus "+m.name)
}

// routeHandle is a NETLINK_ROUTE handle in the benchmark's namespace.
func routeHandle(b *testing.B) *netlink.Handle {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	return h
}

// newBus creates the vcan name (default MTU: FD) and sets it up: two
// requests, as `ip link add NAME type vcan` and `ip link set NAME up`.
func newBus(b *testing.B, h *netlink.Handle, name string) {
	l := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: "vcan"}
	if err := h.LinkAdd(l); err != nil {
		b.Fatalf("create %s: %v", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		b.Fatalf("set %s up: %v", name, err)
	}
}

func detach(b *testing.B, kc string, ns *kerneltest.NS) {
	if _, errs, code := kerneltest.Run(b, kc, "detach", "--netns", ns.Path()); code != 0 {
		b.Errorf("detach %s: exit %d: %s", ns.Path(), code, errs)
	}
}

// forgetStaleRecords reconciles the records once, in process: earlier
// benchmarks leave records of attachments whose namespaces are gone
// (BenchmarkAttach's), which the daemon's first reconcile would otherwise
// forget while it is measured.
func forgetStaleRecords(b *testing.B) {
	host, err := attach.OpenHost()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	rep, err := host.Reconcile(attach.Scope{Full: true})
	if err != nil {
		b.Fatalf("reconcile: %v", err)
	}
	if rep.Changed() {
		b.Logf("before measuring: %d stale records forgotten, %d host ends removed", len(rep.Forgotten), len(rep.Removed))
	}
}

// warmDaemonBinary runs kanto-can-daemon once, so that the first measured
// start does not also read the binary into the page cache.
func warmDaemonBinary(b *testing.B) {
	kerneltest.MustRun(b, kerneltest.DaemonBinary(b), "--help")
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clockTicks = 100

// cpuTime is the CPU time (user + system) the process has used so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	return statCPU(b, fmt.Sprintf("/proc/%d/stat", pid))
}

// cpuTimeFine is the time the process's threads spent on a CPU, from
// /proc/PID/task/TID/schedstat (nanoseconds): finer than /proc/PID/stat's
// 10 ms ticks, for the idle window. Threads that end meanwhile drop out of
// the sum; Go keeps its threads.
func cpuTimeFine(b *testing.B, pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	for _, t := range tasks {
		s, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(s))
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s/%s/schedstat: %v", dir, t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// memory returns the process's resident set and its peak (VmRSS, VmHWM),
// in MB.
func memory(b *testing.B, pid int) (rss, hwm float64) {
	return kerneltest.ProcStatus(b, pid, "VmRSS") / (1 << 20), kerneltest.ProcStatus(b, pid, "VmHWM") / (1 << 20)
}

// resetPeakRSS sets the process's VmHWM back to its current VmRSS.
func resetPeakRSS(b *testing.B, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}
