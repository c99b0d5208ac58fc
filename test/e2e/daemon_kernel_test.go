//go:build kernel

package e2e

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// startDaemon runs `kanto-can daemon` until the test ends and returns once
// it is subscribed and has done its first pass. Its later log lines come on
// the channel.
func startDaemon(t *testing.T) <-chan string {
	t.Helper()
	cmd := exec.Command(kerneltest.Binary(t), "daemon")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	awaitLog(t, lines, "msg=ready")
	return lines
}

// awaitLog reads the daemon's log until a line contains want.
func awaitLog(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the daemon exited before logging %q", want)
			}
			t.Log("daemon: " + l)
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("the daemon did not log %q within %v", want, wait)
		}
	}
}

// Delete and re-create the host bus while three containers are attached:
// the daemon puts their rules back, frames flow to all three again, with no
// duplicate rule.
func TestDaemonRestoresRoutesWhenTheBusReturns(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.MustRun(t, "ip", "link", "add", "dbus", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "dbus", "up")
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "dbus") })
	log := startDaemon(t)
	var inside []*kerneltest.Socket
	for i := 0; i < 3; i++ {
		ns := kerneltest.NewNS(t)
		mustKC(t, "attach", "--netns", ns.Path(), "--bus", "dbus:can0,rx=100-1FF")
		t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
		inside = append(inside, kerneltest.Open(t, ns, "can0"))
	}
	_, before := ours(t)

	kerneltest.MustRun(t, "ip", "link", "del", "dbus")
	if _, rules := ours(t); len(rules) != 0 {
		t.Fatalf("%d rules survived the bus", len(rules))
	}
	kerneltest.MustRun(t, "ip", "link", "add", "dbus", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "dbus", "up")
	awaitLog(t, log, `msg=reconciled why="bus dbus"`)
	host := kerneltest.Open(t, nil, "dbus")
	host.Send(t, frame(0x123, 1))
	for _, s := range inside {
		s.Expect(t, []kerneltest.Frame{frame(0x123, 1)}, wait)
	}
	if _, rules := ours(t); len(rules) != len(before) {
		t.Fatalf("%d rules, want %d", len(rules), len(before))
	}
}

// A container that asked for an optional bus that did not exist yet gets
// routed when the bus appears.
func TestDaemonRoutesAnOptionalBusWhenItAppears(t *testing.T) {
	kerneltest.Require(t)
	log := startDaemon(t)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "latebus:can0,optional")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	inside := kerneltest.Open(t, ns, "can0") // the interface is there already
	kerneltest.VCAN(t, "latebus", 72)
	awaitLog(t, log, `msg=reconciled why="bus latebus"`)
	host := kerneltest.Open(t, nil, "latebus")
	host.Send(t, frame(0x321, 7))
	inside.Expect(t, []kerneltest.Frame{frame(0x321, 7)}, wait)
	inside.Send(t, frame(0x322, 8))
	host.Expect(t, []kerneltest.Frame{frame(0x322, 8)}, wait)
}
