//go:build kernel

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
)

// bridgePolicy is a policy that bridges bus ("bridge": mode; "" leaves it
// to the default, auto) and grants it to every container as grant (JSON).
func bridgePolicy(t *testing.T, bus, mode, grant string) string {
	t.Helper()
	opts := "{}"
	if mode != "" {
		opts = fmt.Sprintf(`{"bridge": %q}`, mode)
	}
	return writePolicy(t, fmt.Sprintf(`{"buses": {%q: %s}, "default": {"buses": {%q: %s}}}`, bus, opts, bus, grant))
}

// requireBridged checks that ns has bus's vcan under inside, ours, with
// mtu, and that the host has no pair and no rule of ours: the daemon
// carries the frames.
func requireBridged(t *testing.T, ns *kerneltest.NS, inside string, mtu int) {
	t.Helper()
	l, err := linkConn(t, ns).LinkByName(inside)
	if err != nil {
		t.Fatalf("%s inside: %v", inside, err)
	}
	if l.Kind != "vcan" || l.MTU != mtu || !strings.HasPrefix(l.Alias, "kanto-can v1 ") || l.OperState != canlink.OperUnknown && l.OperState != canlink.OperUp {
		t.Fatalf("%s inside: kind %s, MTU %d, state %s, alias %q; want an up vcan of ours with MTU %d", inside, l.Kind, l.MTU, l.OperState, l.Alias, mtu)
	}
	if links, rules := leftover.Ours(t); len(links)+len(rules) > 0 {
		t.Fatalf("bridge mode made host ends %v and rules %+v", links, rules)
	}
}

// requireGoneInside checks that ns no longer has inside.
func requireGoneInside(t *testing.T, ns *kerneltest.NS, inside string) {
	t.Helper()
	if _, err := linkConn(t, ns).LinkByName(inside); err == nil {
		t.Fatalf("%s is still inside the namespace", inside)
	}
}

// Bridge mode forced by the policy on an FD vcan bus: the container gets a
// vcan, up, MTU 72; a frame sent each way the moment attach returns is
// carried, classic and FD; ls shows the mode; detach leaves nothing.
func TestBridgeCarriesFramesBothWays(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "brbus", kerneltest.MTUFD)
	d := startDaemon(t, "--metrics-address=127.0.0.1:9761")
	pol := bridgePolicy(t, "brbus", "always", "{}")
	ns := kerneltest.NewNS(t)
	host := kerneltest.Open(t, nil, "brbus")

	out := mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", "brbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	if !strings.Contains(out, "bridged by kanto-can-daemon") {
		t.Errorf("attach said %q, want it to say the bus is bridged", out)
	}
	inside := kerneltest.Open(t, ns, "can0")
	host.Send(t, frame(0x123, 1, 2))
	inside.Expect(t, []kerneltest.Frame{frame(0x123, 1, 2)}, wait)
	inside.Send(t, frame(0x321, 3))
	host.Expect(t, []kerneltest.Frame{frame(0x321, 3)}, wait)
	host.Send(t, fdFrame(0x100, 64))
	inside.Expect(t, []kerneltest.Frame{fdFrame(0x100, 64)}, wait)
	inside.Send(t, fdFrame(0x101, 48))
	host.Expect(t, []kerneltest.Frame{fdFrame(0x101, 48)}, wait)
	requireBridged(t, ns, "can0", kerneltest.MTUFD)
	d.AwaitLogEver(t, "msg=bridging", "bus=brbus", "inside=can0")

	var list []struct{ Bus, Mode, Dir, HostEnd string }
	if err := json.Unmarshal([]byte(mustKC(t, "ls", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Bus != "brbus" || list[0].Mode != "bridge" || list[0].Dir != "both" {
		t.Errorf("ls: %+v, want one bridged attachment on brbus, both ways", list)
	}
	if table := mustKC(t, "ls"); !strings.Contains(table, "bridge") {
		t.Errorf("ls does not show the mode:\n%s", table)
	}
	if status := mustKC(t, "status"); !strings.Contains(status, "1 (1 bridged)") {
		t.Errorf("status does not count the bridged attachment:\n%s", status)
	}
	// The metrics: the mode, and the bridge's own counts as the frames.
	m := kerneltest.Scrape(t, "http://127.0.0.1:9761/metrics")
	if v, ok := m.Value("kanto_can_attachment_mode", map[string]string{"bus": "brbus", "mode": "bridge"}); !ok || v != 1 {
		t.Errorf("kanto_can_attachment_mode{bus=brbus,mode=bridge} = %v (%v), want 1", v, ok)
	}
	for _, dir := range []string{"rx", "tx"} {
		if v, ok := m.Value("kanto_can_frames_total", map[string]string{"bus": "brbus", "direction": dir, "result": "handled"}); !ok || v != 2 {
			t.Errorf("kanto_can_frames_total{bus=brbus,direction=%s,result=handled} = %v (%v), want 2 (a classic and an FD frame)", dir, v, ok)
		}
	}

	if out := mustKC(t, "detach", "--netns", ns.Path()); !strings.Contains(out, "brbus") {
		t.Errorf("detach said %q, want brbus", out)
	}
	requireGoneInside(t, ns, "can0")
	d.AwaitLogEver(t, `msg="bridge `) // stopped, or ended as its vcan went first
	requireNothingOfOurs(t)
}

// The policy's filters each way are the sockets' kernel filters, and its
// rate limit is the daemon's: only granted ids pass, and a flood from the
// container is cut to the burst plus what the rate allows.
func TestBridgeFiltersAndRateLimit(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "brfbus", kerneltest.MTUClassic)
	startDaemon(t)
	pol := bridgePolicy(t, "brfbus", "always", `{"rx": ["100-1FF", "7E8"], "tx": ["200-2FF"], "tx_rate": {"frames_per_second": 10, "burst": 5}}`)
	ns := kerneltest.NewNS(t)
	host := kerneltest.Open(t, nil, "brfbus")
	mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", "brfbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	requireBridged(t, ns, "can0", kerneltest.MTUClassic)
	inside := kerneltest.Open(t, ns, "can0")

	// Receive: only the granted ids reach the container.
	for _, id := range []uint32{0x0FF, 0x100, 0x1FF, 0x200, 0x7E7} {
		host.Send(t, frame(id))
	}
	host.Send(t, frame(0x7E8)) // granted: the marker
	inside.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x100), frame(0x1FF)}, frame(0x7E8), wait)

	// Transmit: 30 frames at once, half outside the grant. Of the granted
	// ones the burst (5) passes, and what 10/s adds while they are read
	// (under a tenth of a second: at most one more). Then a marker is sent
	// until the refilled limit lets one through: every frame before it
	// has been counted.
	for i := 0; i < 15; i++ {
		inside.Send(t, frame(0x300+uint32(i))) // refused: not granted
		inside.Send(t, frame(0x200+uint32(i)))
	}
	marker := frame(0x2FF, 0xEE)
	got := 0
	for done := false; !done; {
		inside.Send(t, marker)
		for {
			f, err := host.Recv(wait / 20)
			if err != nil {
				break // dropped by the limit: send it again
			}
			if f.Equal(marker) {
				done = true
				break
			}
			if f.ID >= 0x300 {
				t.Fatalf("frame %s outside the transmit grant reached the bus", f)
			}
			got++
		}
	}
	if got < 5 || got > 6 {
		t.Errorf("%d of 15 granted frames sent at once passed the limit of 10/s burst 5; want 5 or 6", got)
	}
}

// Two containers bridged onto one bus hear each other's frames (as on a
// bus), and neither hears its own frame back.
func TestBridgeContainersHearEachOther(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "brpbus", kerneltest.MTUClassic)
	startDaemon(t)
	pol := bridgePolicy(t, "brpbus", "always", "{}")
	var inside []*kerneltest.Socket
	for i := 0; i < 2; i++ {
		ns := kerneltest.NewNS(t)
		mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", "brpbus:can0")
		t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
		inside = append(inside, kerneltest.Open(t, ns, "can0"))
	}
	host := kerneltest.Open(t, nil, "brpbus")
	inside[0].Send(t, frame(0x10, 0))
	inside[1].Expect(t, []kerneltest.Frame{frame(0x10, 0)}, wait)
	host.Expect(t, []kerneltest.Frame{frame(0x10, 0)}, wait)
	inside[1].Send(t, frame(0x11, 1))
	// The sender's own frame does not come back before the other's.
	inside[0].ExpectOnlyUntil(t, nil, frame(0x11, 1), wait)
	host.Send(t, frame(0x12, 2))
	inside[1].ExpectOnlyUntil(t, nil, frame(0x12, 2), wait)
}

// Without kanto-can-daemon a bridged attach fails with a line that says
// so, and leaves nothing: no vcan inside, no record.
func TestBridgeWithoutDaemon(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "brnbus", kerneltest.MTUClassic)
	pol := bridgePolicy(t, "brnbus", "always", "{}")
	ns := kerneltest.NewNS(t)
	failKC(t, "bridge mode needs kanto-can-daemon, and it is not running", "attach", "--config", pol, "--netns", ns.Path(), "--bus", "brnbus:can0")
	requireGoneInside(t, ns, "can0")
	requireNothingOfOurs(t)
}

// The daemon killed and started again: its bridges come back from the
// records, once each; the bus deleted and made again: the bridge follows
// it; detached: nothing left, the daemon's bridge stopped.
func TestBridgeSurvivesDaemonAndBus(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "brrbus", kerneltest.MTUClassic)
	d := startDaemon(t)
	pol := bridgePolicy(t, "brrbus", "always", "{}")
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--config", pol, "--netns", ns.Path(), "--bus", "brrbus:can0")
	inside := kerneltest.Open(t, ns, "can0")
	host := kerneltest.Open(t, nil, "brrbus")

	d.Kill9(t)
	d = startDaemon(t)
	d.AwaitLogEver(t, "msg=bridging", "bus=brrbus")
	host.Send(t, frame(0x1, 1))
	inside.Expect(t, []kerneltest.Frame{frame(0x1, 1)}, wait)
	inside.Send(t, frame(0x2, 2))
	host.Expect(t, []kerneltest.Frame{frame(0x2, 2)}, wait)
	if n := d.Count("msg=bridging"); n != 1 {
		t.Errorf("the restarted daemon bridged %d times, want once", n)
	}

	kerneltest.MustRun(t, "ip", "link", "del", "brrbus")
	host.Close()
	kerneltest.MustRun(t, "ip", "link", "add", "brrbus", "type", "vcan", "mtu", "16")
	kerneltest.MustRun(t, "ip", "link", "set", "brrbus", "up")
	host = kerneltest.Open(t, nil, "brrbus")
	// The bus's return is a link event the daemon acts on; the first frame
	// may come before it: send until one arrives, then check both ways.
	awaitCarried(t, host, inside)
	inside.Send(t, frame(0x4, 4))
	host.Expect(t, []kerneltest.Frame{frame(0x4, 4)}, wait)

	// Detached: the vcan, the record and the daemon's socket in the
	// namespace go (that socket alone would keep the namespace alive).
	mustKC(t, "detach", "--netns", ns.Path())
	d.AwaitLogEver(t, `msg="bridge `) // stopped, or ended as its vcan went first
	requireGoneInside(t, ns, "can0")
	requireNothingOfOurs(t)
}

// awaitCarried sends numbered frames from the host until one reaches the
// container: a path that comes back with an event, awaited by its effect.
func awaitCarried(t *testing.T, host, inside *kerneltest.Socket) {
	t.Helper()
	for i := 0; i < 50; i++ {
		host.Send(t, frame(0x3, byte(i)))
		if _, err := inside.Recv(wait / 50); err == nil {
			return
		}
	}
	t.Fatalf("no frame reached the container within %v after the bus came back", wait)
}

// A kernel without vxcan (an "install vxcan /bin/false" line, as a kernel
// built without it behaves): attach bridges by itself; with the policy's
// "bridge": "never" it fails, naming why, and leaves nothing.
func TestBridgeWhereVxcanIsMissing(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "brxbus", kerneltest.MTUClassic)
	startDaemon(t)
	kerneltest.WithoutModule(t, "vxcan")
	ns := kerneltest.NewNS(t)

	never := bridgePolicy(t, "brxbus", "never", "{}")
	failKC(t, `this kernel has no vxcan`, "attach", "--config", never, "--netns", ns.Path(), "--bus", "brxbus:can0")
	requireGoneInside(t, ns, "can0")
	requireNothingOfOurs(t)

	auto := bridgePolicy(t, "brxbus", "", "{}")
	mustKC(t, "attach", "--config", auto, "--netns", ns.Path(), "--bus", "brxbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	requireBridged(t, ns, "can0", kerneltest.MTUClassic)
	inside := kerneltest.Open(t, ns, "can0")
	host := kerneltest.Open(t, nil, "brxbus")
	host.Send(t, frame(0x5, 5))
	inside.Expect(t, []kerneltest.Frame{frame(0x5, 5)}, wait)
	inside.Send(t, frame(0x6, 6))
	host.Expect(t, []kerneltest.Frame{frame(0x6, 6)}, wait)
	if _, err := os.Stat(filepath.Join("/sys/module", "vxcan")); err == nil {
		t.Fatal("vxcan was loaded after all")
	}
	mustKC(t, "detach", "--netns", ns.Path())
	requireGoneInside(t, ns, "can0")
	requireNothingOfOurs(t)
}
