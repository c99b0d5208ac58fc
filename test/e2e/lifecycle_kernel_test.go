//go:build kernel

package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// foreign makes objects kanto-can did not make: a vxcan pair and a can-gw
// rule between two vcans. Every test below checks they survive untouched.
func foreign(t *testing.T) (untouched func()) {
	t.Helper()
	a := kerneltest.VCAN(t, "fgna", 72)
	b := kerneltest.VCAN(t, "fgnb", 72)
	if _, _, code := kerneltest.Run(t, "ip", "link", "add", "fgnvx0", "type", "vxcan", "peer", "name", "fgnvx1"); code != 0 {
		t.Fatal("cannot make the foreign vxcan pair")
	}
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "fgnvx0") })
	pair := []int{kerneltest.Ifindex(t, "fgnvx0"), kerneltest.Ifindex(t, "fgnvx1")}
	gw := dialGW(t)
	r := cangw.Rule{Src: a, Dst: b, Flags: cangw.FlagEcho}
	if err := gw.Add(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Delete(r) })
	// untouched fails the test unless the pair and the rule are still
	// there, as they were made.
	return func() {
		t.Helper()
		for i, name := range []string{"fgnvx0", "fgnvx1"} {
			if l, err := linkConn(t, nil).LinkByName(name); err != nil || l.Index != pair[i] || l.Alias != "" {
				t.Errorf("foreign vxcan end %s: %+v, %v; want it untouched (ifindex %d)", name, l, err, pair[i])
			}
		}
		rules, err := gw.List()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range rules {
			if x.Equal(r) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the foreign rule %d>%d is there %d times, want once", a, b, n)
		}
	}
}

// Attaching twice leaves the same kernel state; detach removes every link
// and rule of ours and nothing else.
func TestAttachIsIdempotentAndDetachIsExact(t *testing.T) {
	kerneltest.Require(t)
	foreign(t)
	kerneltest.VCAN(t, "idbus", 72)
	kerneltest.VCAN(t, "idbus2", 16)
	ns := kerneltest.NewNS(t)
	before := snapshot(t, ns)
	args := []string{"attach", "--netns", ns.Path(), "--bus", "idbus:can0,rx=7DF,7E8,tx=100-1FF", "--bus", "idbus2:can1,dir=rx"}
	mustKC(t, args...)
	once := snapshot(t, ns)
	if once == before {
		t.Fatal("attach changed nothing")
	}
	out := mustKC(t, args...)
	if twice := snapshot(t, ns); twice != once {
		t.Fatalf("second attach changed the kernel state:\nonce:\n%s\ntwice:\n%s", once, twice)
	}
	if !strings.Contains(out, "unchanged") {
		t.Errorf("second attach says %q, want it to report no change", out)
	}
	links, rules := leftover.Ours(t)
	// idbus: (2 rx filters + 1 tx block) x classic+FD = 6; idbus2: 1 rx classic.
	if len(links) != 2 || len(rules) != 7 {
		t.Fatalf("links %v, %d rules: want 2 links and 7 rules", links, len(rules))
	}
	// Detach one bus, then the rest.
	mustKC(t, "detach", "--netns", ns.Path(), "--bus", "idbus2")
	if links, _ := leftover.Ours(t); len(links) != 1 {
		t.Fatalf("after detaching idbus2: links %v", links)
	}
	mustKC(t, "detach", "--netns", ns.Path())
	requireNothingOfOurs(t)
	if after := snapshot(t, ns); after != before {
		t.Fatalf("detach did not restore the state before attach:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Detaching again is fine and says so.
	if _, errOut, code := kc(t, "detach", "--netns", ns.Path()); code != 0 || !strings.Contains(errOut, "nothing attached") {
		t.Fatalf("second detach: exit %d, %q", code, errOut)
	}
}

// detach --all (what removing the package runs) removes the attachments of
// every container and nothing else.
func TestDetachAllIsExact(t *testing.T) {
	kerneltest.Require(t)
	untouched := foreign(t)
	kerneltest.VCAN(t, "allbus", 72)
	a, b := kerneltest.NewNS(t), kerneltest.NewNS(t)
	before := [2]string{snapshot(t, a), snapshot(t, b)}
	mustKC(t, "attach", "--netns", a.Path(), "--bus", "allbus")
	mustKC(t, "attach", "--netns", b.Path(), "--bus", "allbus:can1,rx=100")
	if links, _ := leftover.Ours(t); len(links) != 2 {
		t.Fatalf("after attaching two: our links %v", links)
	}
	out := mustKC(t, "detach", "--all")
	if n := strings.Count(out, "detached allbus"); n != 2 {
		t.Errorf("detach --all says %q: want two lines, one per container", out)
	}
	requireNothingOfOurs(t)
	untouched()
	for i, ns := range []*kerneltest.NS{a, b} {
		if after := snapshot(t, ns); after != before[i] {
			t.Errorf("namespace %d after detach --all:\n%s\nwant\n%s", i, after, before[i])
		}
	}
	if _, errOut, code := kc(t, "detach", "--all"); code != 0 || !strings.Contains(errOut, "nothing attached") {
		t.Errorf("detach --all again: exit %d, %q", code, errOut)
	}
	failKC(t, "--all detaches every container", "detach", "--all", "--netns", a.Path())
}

// While the package's removal holds attachments (record.HoldFile), attach
// and the hook are refused with the hold's reason, and change nothing.
func TestHoldRefusesAttach(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "holdbus", 16)
	ns := kerneltest.NewNS(t)
	hold := filepath.Join(record.DefaultDir, record.HoldFile)
	if err := os.MkdirAll(record.DefaultDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hold, []byte("the kanto-can package is being removed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hold) })
	before := snapshot(t, ns)
	failKC(t, "not attaching: the kanto-can package is being removed", "attach", "--netns", ns.Path(), "--bus", "holdbus")
	c := newFakeContainer(t, "held", []string{"KANTO_CAN=holdbus"}, false)
	if stderr, code := c.hook(t, "creating", "prestart"); code == 0 || !strings.Contains(stderr, "not attaching: the kanto-can package is being removed") {
		t.Errorf("held prestart hook: exit %d, %q", code, stderr)
	}
	requireNothingOfOurs(t)
	if after := snapshot(t, ns); after != before {
		t.Fatalf("a held attach changed the namespace:\n%s\nwant\n%s", after, before)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "holdbus")
	mustKC(t, "detach", "--netns", ns.Path())
}

// Attach with changed filters updates the rules in place.
func TestReattachUpdatesRules(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "upbus", 16)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "upbus:can0,rx=7DF")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	out := mustKC(t, "attach", "--netns", ns.Path(), "--bus", "upbus:can0,rx=7E8")
	if !strings.Contains(out, "1 rules added, 1 removed") {
		t.Fatalf("re-attach output %q", out)
	}
	a := lsOne(t, "upbus")
	var filters []string
	for _, r := range a.Rules {
		filters = append(filters, r.Direction+":"+r.Filter)
	}
	if strings.Join(filters, " ") != "rx:7E8 tx:all" && strings.Join(filters, " ") != "tx:all rx:7E8" {
		t.Fatalf("rules after update: %v", filters)
	}
	failKC(t, "detach it first", "attach", "--netns", ns.Path(), "--bus", "upbus:other")
}

// Destroying the container's network namespace leaves nothing of ours: the
// kernel removes the pair and its rules, the daemon the record.
func TestNetnsDestroyedLeavesNothing(t *testing.T) {
	kerneltest.Require(t)
	d := startDaemon(t)
	foreign(t)
	kerneltest.VCAN(t, "nsbus", 72)
	ns := kerneltest.NewNS(t)
	before := snapshot(t, nil)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "nsbus:can0")
	links, _ := leftover.Ours(t)
	if len(links) != 1 {
		t.Fatalf("links of ours: %v", links)
	}
	ns.Delete(t)
	kerneltest.AwaitLinkGone(t, links[0], wait)
	d.AwaitLog(t, "msg=reconciled", "forgotten="+links[0])
	requireNothingOfOurs(t)
	if after := snapshot(t, nil); after != before {
		t.Fatalf("state differs from before the attach:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Inside the container, without CAP_NET_ADMIN, the interface cannot be
// reconfigured and no gateway rule can be added; sending still works.
func TestContainerCannotReconfigure(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "privbus", 72)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", "privbus:can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	host := kerneltest.Open(t, nil, "privbus")
	before := snapshot(t, ns)
	for _, args := range [][]string{
		{"ip", "link", "set", "can0", "down"},
		{"ip", "link", "set", "can0", "mtu", "16"},
		{"ip", "link", "set", "can0", "name", "evil0"},
		{"ip", "link", "del", "can0"},
		{"cangw", "-A", "-s", "can0", "-d", "can0", "-e"},
	} {
		cmd := ns.Unprivileged(args[0], args[1:]...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("unprivileged %s succeeded: %s", strings.Join(args, " "), out)
		}
	}
	if after := snapshot(t, ns); after != before {
		t.Fatalf("an unprivileged process changed the kernel state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Positive control: the same unprivileged identity can use the bus.
	out, err := ns.Unprivileged("cansend", "can0", "4A1#C0FFEE").CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged cansend: %v: %s", err, out)
	}
	host.Expect(t, []kerneltest.Frame{frame(0x4A1, 0xC0, 0xFF, 0xEE)}, wait)
}

// Bad input: a clear one-line error, a non-zero exit and nothing left.
func TestBadInput(t *testing.T) {
	kerneltest.Require(t)
	foreign(t)
	kerneltest.VCAN(t, "badbus", 72)
	ns := kerneltest.NewNS(t)
	kerneltest.VCAN(t, "badbus2", 72)
	if _, _, code := kerneltest.Run(t, "ip", "link", "add", "notcan0", "type", "dummy"); code != 0 {
		t.Fatal("cannot make a dummy interface")
	}
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "notcan0") })
	taken := ns.Command("ip", "link", "add", "taken0", "type", "vcan")
	if out, err := taken.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	exited := exitedPID(t)
	// A process in the host's namespace. (Not the test's own pid: the Go
	// runtime may have parked its main thread in a test namespace.)
	hostProc := exec.Command("sleep", "600")
	if err := hostProc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostProc.Process.Kill(); hostProc.Wait() })
	// A file that exists and is no namespace: the test's own (the arm64
	// guest's root has no /etc/hostname, say).
	notNS := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(notNS, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, ns)
	nsArg := []string{"attach", "--netns", ns.Path()}
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"host bus nosuch0 does not exist", append(nsArg, "--bus", "nosuch0")},
		{"host bus notcan0 is not a CAN interface", append(nsArg, "--bus", "notcan0")},
		{"host bus lo is not a CAN interface", append(nsArg, "--bus", "lo")},
		{"pid 4000000 does not exist", []string{"attach", "--pid", "4000000", "--bus", "badbus"}},
		{"pid " + strconv.Itoa(exited) + " has exited", []string{"attach", "--pid", strconv.Itoa(exited), "--bus", "badbus"}},
		{"is not a network namespace", []string{"attach", "--netns", notNS, "--bus", "badbus"}},
		{"no such file", []string{"attach", "--netns", "/run/netns/nosuch", "--bus", "badbus"}},
		{"shares the host's network namespace", []string{"attach", "--pid", strconv.Itoa(hostProc.Process.Pid), "--bus", "badbus"}},
		{"at most 15", append(nsArg, "--bus", "badbus:averyveryverylongname")},
		{"inside name taken0 is already taken", append(nsArg, "--bus", "badbus:taken0")},
		{"11-bit range", append(nsArg, "--bus", "badbus,rx=800")},
		{"5 hex digits", append(nsArg, "--bus", "badbus,tx=12345")},
		{"mixes a standard and an extended id", append(nsArg, "--bus", "badbus,rx=100-18DAF110")},
		{"not key=value", append(nsArg, "--bus", "badbus,7DF")},
		{"no bus", nsArg},
		{"name the container one way", []string{"attach", "--pid", "1", "--netns", ns.Path(), "--bus", "badbus"}},
		{"name the container one way", []string{"attach", "some-ctr", "--pid", "1", "--bus", "badbus"}},
		// The first bus is fine, the second fails: the first is undone.
		{"inside name taken0 is already taken", append(nsArg, "--bus", "badbus:can0", "--bus", "badbus2:taken0")},
	} {
		failKC(t, tc.want, tc.args...)
		if after := snapshot(t, ns); after != before {
			t.Fatalf("kanto-can %s left something behind:\nbefore:\n%s\nafter:\n%s", strings.Join(tc.args, " "), before, after)
		}
	}
}

// exitedPID returns the pid of a child that has exited but is not reaped
// yet (a zombie): /proc/PID exists, its namespaces do not.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	var info unix.Siginfo
	// WNOWAIT: wait for the exit without reaping the child.
	if err := waitid(cmd.Process.Pid, &info); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// detach CONTAINER finds a container by its recorded attachments once its
// process and containerd task are gone (its namespace may live on, and with
// it the pair); a name nothing knows is a one-line error that changes
// nothing, for ls as for detach.
func TestDetachByNameOnceTheProcessIsGone(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "gonebus", 16)
	ns := kerneltest.NewNS(t)
	// The line is written once the process is in the namespace.
	proc := ns.Command("sh", "-c", "echo in; exec sleep 600")
	stdout, err := proc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "in\n" {
		t.Fatalf("process in the namespace: %q, %v", line, err)
	}
	// A containerd task of the process, as containerd's shim records it.
	state := t.TempDir()
	task := filepath.Join(state, "io.containerd.runtime.v2.task", "e2e", "gone-app")
	if err := os.MkdirAll(task, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(task, "init.pid"), []byte(strconv.Itoa(proc.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	where := []string{"--containerd-state", state, "--namespace", "e2e", "--kanto-meta", t.TempDir()}
	with := func(args ...string) []string { return append(args, where...) }
	mustKC(t, with("attach", "gone-app", "--bus", "gonebus")...)
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })

	// The process exits and containerd deletes its task; the namespace
	// lives on, and so does the pair.
	proc.Process.Kill()
	proc.Wait()
	if err := os.RemoveAll(task); err != nil {
		t.Fatal(err)
	}
	if out := mustKC(t, with("ls", "gone-app")...); !strings.Contains(out, "gonebus") {
		t.Fatalf("ls gone-app does not show its attachment:\n%s", out)
	}
	before := snapshot(t, ns)
	for _, cmd := range []string{"ls", "detach"} {
		failKC(t, "container typo: no such container", with(cmd, "typo")...)
	}
	if after := snapshot(t, ns); after != before {
		t.Fatalf("a refused name changed the kernel state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out := mustKC(t, with("detach", "gone-app")...); !strings.Contains(out, "detached gonebus") {
		t.Fatalf("detach gone-app: %q", out)
	}
	requireNothingOfOurs(t)
	// Nothing knows the name any more.
	failKC(t, "container gone-app: no such container", with("detach", "gone-app")...)
}
