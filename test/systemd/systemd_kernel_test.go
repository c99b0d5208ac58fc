//go:build kernel

package systemd_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// Under emulation systemd takes about 10 s to start and 10 s more to start
// the unit (sysinit.target and basic.target come first); a loaded machine
// doubles that.
const wait = 2 * time.Minute

const (
	unitDir  = "/etc/systemd/system"
	unitName = "kanto-can.service"
	// The target systemd starts with: nothing but what the test asks for.
	testTarget = "kanto-can-test.target"
	// Written by the drop-in's ExecStopPost with how the daemon ended.
	stopLine = "kanto-can-test: stopped"
	// CAP_NET_ADMIN (12), CAP_SYS_PTRACE (19) and CAP_SYS_ADMIN (21, these
	// two for bridge mode) as /proc/PID/status shows capability sets.
	daemonCaps = "0000000000281000"
	metricsURL = "http://127.0.0.1:9731/metrics"
	policyPath = "/etc/kanto-can/config.json"
)

// The unit as shipped, with the binary under test installed where the
// unit's ExecStart has it (as on a device: the checkout may be under /tmp,
// which the unit's PrivateTmp hides), runs the daemon with CAP_NET_ADMIN,
// and for bridge mode CAP_SYS_ADMIN and CAP_SYS_PTRACE, nothing else; the daemon serves metrics
// at the default address, puts a returning bus's routes back, and stops
// cleanly on systemctl stop (exit status 0, the unit inactive, not failed).
func TestUnitUnderSystemd(t *testing.T) {
	kerneltest.Require(t)
	kc := kerneltest.Binary(t)
	unit, err := os.ReadFile("../../deploy/" + unitName)
	if err != nil {
		t.Fatal(err)
	}
	installBinary(t, kerneltest.DaemonBinary(t), execStart(t, string(unit)))
	install(t, filepath.Join(unitDir, unitName), string(unit))
	install(t, filepath.Join(unitDir, unitName+".d", "kanto-can-test.conf"), fmt.Sprintf(`[Service]
ExecStopPost=+/bin/sh -c 'echo "%s: result=$SERVICE_RESULT code=$EXIT_CODE status=$EXIT_STATUS"'
`, stopLine))
	install(t, filepath.Join(unitDir, testTarget), "[Unit]\nDescription=kanto-can test: nothing\n")

	// A bus and a container on it, attached before the daemon starts.
	kerneltest.VCAN(t, "sdbus", kerneltest.MTUClassic)
	ns := kerneltest.NewNS(t)
	kerneltest.MustRun(t, kc, "attach", "--netns", ns.Path(), "--bus", "sdbus:can0")
	t.Cleanup(func() { kerneltest.Run(t, kc, "detach", "--netns", ns.Path()) })
	inside := kerneltest.Open(t, ns, "can0")
	// A bus and a namespace for bridge mode, made before the unit starts
	// (the unit has a mount namespace of its own).
	kerneltest.VCAN(t, "sdbr", kerneltest.MTUClassic)
	brNS := kerneltest.NewNS(t)
	brPolicy := filepath.Join(t.TempDir(), "bridge.json")
	install(t, brPolicy, `{"buses": {"sdbr": {"bridge": "always"}}, "default": {"buses": {"sdbr": {}}}}`)
	// The admin's policy, as on a device: the daemon reports it (without
	// one it warns).
	install(t, policyPath, `{"buses": {"sdbus": {}}, "default": {"buses": {"sdbus": {}}}}`)

	sd := startSystemd(t)
	sd.systemctl(t, "start", unitName)
	journal := sd.follow(t, unitName)
	journal.await(t, "level=INFO", "msg=policy", "path="+policyPath, "buses=1")
	journal.await(t, "msg=ready", "metrics=127.0.0.1:9731")

	// Capabilities: the unit's three in every set that has any, nothing else.
	pid := sd.hostPID(t, sd.show(t, unitName, "MainPID"))
	status := procStatus(t, pid)
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if status[set] != daemonCaps {
			t.Errorf("%s of the daemon = %s, want %s (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE)", set, status[set], daemonCaps)
		}
	}
	if status["NoNewPrivs"] != "1" || !strings.HasPrefix(status["Uid"], "0\t") {
		t.Errorf("daemon NoNewPrivs %q, Uid %q: want 1 and root", status["NoNewPrivs"], status["Uid"])
	}

	// Metrics at the default address: the attachment and its bus.
	m := kerneltest.Scrape(t, metricsURL)
	if v, ok := m.Value("kanto_can_attachments", nil); !ok || v != 1 {
		t.Errorf("kanto_can_attachments = %v (%v), want 1", v, ok)
	}
	if v, ok := m.Value("kanto_can_bus_up", map[string]string{"bus": "sdbus"}); !ok || v != 1 {
		t.Errorf("kanto_can_bus_up{bus=sdbus} = %v (%v), want 1", v, ok)
	}

	// The bus goes and comes back (a replugged adapter): its rules go with
	// it, and the daemon puts them back.
	kerneltest.MustRun(t, "ip", "link", "del", "sdbus")
	if n := rulesOn(t, "sdbus"); n != 0 {
		t.Fatalf("%d gateway rules survived the bus", n)
	}
	kerneltest.MustRun(t, "ip", "link", "add", "sdbus", "mtu", "16", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "sdbus", "up")
	journal.await(t, "msg=reconciled", "restored=kcan")
	host := kerneltest.Open(t, nil, "sdbus")
	down := kerneltest.Frame{ID: 0x123, Data: []byte{1}}
	up := kerneltest.Frame{ID: 0x124, Data: []byte{2}}
	host.Send(t, down)
	inside.Expect(t, []kerneltest.Frame{down}, 10*time.Second)
	inside.Send(t, up)
	host.Expect(t, []kerneltest.Frame{up}, 10*time.Second)
	if n := rulesOn(t, "sdbus"); n != 2 {
		t.Errorf("%d gateway rules on the returned bus, want 2 (one each way)", n)
	}
	m = kerneltest.Scrape(t, metricsURL)
	if v, ok := m.Value("kanto_can_reconcile_changes_total", map[string]string{"change": "restored"}); !ok || v < 1 {
		t.Errorf("metrics: restored = %v (%v), want at least 1", v, ok)
	}
	if n := sd.show(t, unitName, "NRestarts"); n != "0" {
		t.Errorf("NRestarts = %s: the daemon exited on its own and was restarted", n)
	}

	// Bridge mode under the unit's sandbox (its capabilities, AF_CAN): the
	// daemon enters the namespace and carries frames both ways; after
	// systemctl restart the bridge is back from the record.
	kerneltest.MustRun(t, kc, "--config", brPolicy, "attach", "--netns", brNS.Path(), "--bus", "sdbr:can0")
	journal.await(t, "msg=bridging", "bus=sdbr")
	brHost := kerneltest.Open(t, nil, "sdbr")
	brInside := kerneltest.Open(t, brNS, "can0")
	bridged := func(n byte) {
		t.Helper()
		brHost.Send(t, kerneltest.Frame{ID: 0x200, Data: []byte{n}})
		brInside.Expect(t, []kerneltest.Frame{{ID: 0x200, Data: []byte{n}}}, 10*time.Second)
		brInside.Send(t, kerneltest.Frame{ID: 0x201, Data: []byte{n}})
		brHost.Expect(t, []kerneltest.Frame{{ID: 0x201, Data: []byte{n}}}, 10*time.Second)
	}
	bridged(1)
	sd.systemctl(t, "restart", unitName)
	journal.await(t, "msg=bridging", "bus=sdbr")
	bridged(2)
	kerneltest.MustRun(t, kc, "detach", "--netns", brNS.Path())
	journal.await(t, `msg="bridge `)
	pid = sd.hostPID(t, sd.show(t, unitName, "MainPID"))

	// A clean stop: SIGTERM, the daemon says so and exits 0, systemd
	// counts it a success; the unit is inactive, not failed.
	sd.systemctl(t, "stop", unitName)
	journal.await(t, "msg=stopping")
	line := journal.await(t, stopLine)
	if want := stopLine + ": result=success code=exited status=0"; line != want {
		t.Errorf("the daemon's end: %q, want %q", line, want)
	}
	if out, _, _ := sd.run(t, "systemctl", "is-active", unitName); strings.TrimSpace(out) != "inactive" {
		t.Errorf("systemctl is-active after stop: %q, want inactive", out)
	}
	// No containerd runs here: each daemon (the unit was restarted once)
	// says so, once. Nothing else.
	unreachable := 0
	for _, l := range journal.seen {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "containerd not reachable") {
			unreachable++
		} else if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Errorf("the daemon complained: %s", l)
		}
	}
	if unreachable > 2 {
		t.Errorf("containerd unreachable warned %d times, want at most once per start (2)", unreachable)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the daemon's process %d after stop: %v", pid, err)
	}
	// The daemon leaves routes to the hooks and to itself: stopping it
	// changes nothing.
	if n := rulesOn(t, "sdbus"); n != 2 {
		t.Errorf("%d gateway rules after the daemon stopped, want 2", n)
	}
}

// install writes a file for the test (kerneltest.InstallFile).
func install(t *testing.T, path, content string) { kerneltest.InstallFile(t, path, content) }

// execStart returns the program of the unit's ExecStart=.
func execStart(t *testing.T, unit string) string {
	t.Helper()
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok && v != "" {
			return strings.Fields(v)[0]
		}
	}
	t.Fatal("the unit has no ExecStart")
	return ""
}

// installBinary copies the binary to path in the guest (its root is a
// tmpfs overlay: the host's file system is not touched), putting back what
// was there at the end.
func installBinary(t *testing.T, from, path string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	old, oldErr := os.ReadFile(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// A new file, not written over: a running binary cannot be rewritten.
	tmp := path + ".kanto-can-test"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if oldErr == nil {
			os.WriteFile(tmp, old, 0o755)
			os.Rename(tmp, path)
			return
		}
		os.Remove(path)
	})
}

// rulesOn counts the gateway rules from or to a bus (0 if it is gone).
func rulesOn(t *testing.T, bus string) int {
	t.Helper()
	l, err := netlink.LinkByName(bus)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0
		}
		t.Fatal(err)
	}
	gw, err := cangw.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	rules, err := gw.List()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rules {
		if r.Src == l.Attrs().Index || r.Dst == l.Attrs().Index {
			n++
		}
	}
	return n
}

// procStatus reads /proc/PID/status into its fields.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

// systemd is systemd as PID 1 of a PID and mount namespace of its own.
type systemd struct {
	pid int // systemd's pid in the guest's PID namespace
}

// startSystemd starts systemd and returns once it says it is ready (its
// READY=1 on $NOTIFY_SOCKET, as for a container manager). It is killed at
// cleanup, which ends every process of its namespace.
func startSystemd(t *testing.T) *systemd {
	t.Helper()
	const bin = "/lib/systemd/systemd"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: Debian's systemd is needed (make setup installs it)", err)
	}
	// Not under /tmp: systemd gets a /tmp of its own (below).
	dir, err := os.MkdirTemp("/run", "kanto-can-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	cgroupsBefore := cgroups(t)

	// In its mount namespace, before systemd starts: a /tmp of its own
	// (systemd-tmpfiles empties /tmp at boot) and /proc/sys read-only, as
	// container managers do (systemd-sysctl then leaves the guest's kernel
	// parameters alone).
	setup := `mount -t tmpfs -o mode=1777 tmpfs /tmp && mount --bind /proc/sys /proc/sys && ` +
		`mount -o remount,bind,ro /proc/sys && exec "$@"`
	cmd := exec.Command("unshare", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child",
		"sh", "-c", setup, "sh", bin, "--unit="+testTarget, "--log-target=kmsg", "--log-level=info")
	// container=: systemd acts as in a container (as under nspawn or
	// podman), whatever the host's root it sees says.
	cmd.Env = append(os.Environ(), "container=kanto-can-test", "NOTIFY_SOCKET="+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sd := &systemd{}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() && sd.pid > 0 {
			out, _, _ := sd.run(t, "journalctl", "--no-pager", "-n", "60")
			t.Logf("systemd's journal, last lines:\n%s", out)
		}
		// Killing systemd ends its namespace: the kernel kills and reaps
		// every process in it before systemd's exit reaches unshare,
		// which then ends. Without systemd's pid, unshare's end kills it
		// (--kill-child).
		if sd.pid > 0 {
			syscall.Kill(sd.pid, syscall.SIGKILL)
		} else {
			cmd.Process.Kill()
		}
		select {
		case <-exited:
		case <-time.After(wait):
			cmd.Process.Kill()
			t.Errorf("unshare did not end within %v of killing systemd", wait)
		}
		removeCgroups(t, cgroupsBefore)
	})

	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("systemd's notify socket: %v", err)
		}
	case err := <-exited:
		t.Fatalf("systemd ended before it was ready: %v (its log is in the guest's dmesg)", err)
	case <-time.After(wait):
		t.Fatalf("systemd not ready within %v", wait)
	}
	// systemd is unshare's only child.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if sd.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		t.Fatalf("unshare's children: %q", b)
	}
	return sd
}

// command is a command run in systemd's namespaces: systemctl asks for the
// caller's pid, which must be one systemd can see.
func (sd *systemd) command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(sd.pid), "-p", "-m", name}, args...)...)
}

func (sd *systemd) run(t *testing.T, name string, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	return kerneltest.RunCmd(t, sd.command(name, args...))
}

func (sd *systemd) systemctl(t *testing.T, args ...string) {
	t.Helper()
	if out, errs, code := sd.run(t, "systemctl", args...); code != 0 {
		t.Fatalf("systemctl %v: exit %d\n%s%s", args, code, out, errs)
	}
}

// show returns one property of a unit.
func (sd *systemd) show(t *testing.T, unit, prop string) string {
	t.Helper()
	out, errs, code := sd.run(t, "systemctl", "show", "--value", "-p", prop, unit)
	if code != 0 {
		t.Fatalf("systemctl show %s %s: exit %d: %s", prop, unit, code, errs)
	}
	return strings.TrimSpace(out)
}

// hostPID maps a pid of systemd's namespace (as systemctl shows it) to the
// guest's, through the NSpid lines of /proc/PID/status.
func (sd *systemd) hostPID(t *testing.T, inner string) int {
	t.Helper()
	pidns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", sd.pid))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if ns, err := os.Readlink(d + "/ns/pid"); err != nil || ns != pidns {
			continue
		}
		b, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) == 2 && f[1] == inner {
					pid, _ := strconv.Atoi(f[0])
					return pid
				}
			}
		}
	}
	t.Fatalf("no process with pid %s in systemd's namespace", inner)
	return 0
}

// journal follows a unit's journal (message texts only).
type journal struct {
	lines <-chan string
	seen  []string // the lines await read
}

func (sd *systemd) follow(t *testing.T, unit string) *journal {
	t.Helper()
	cmd := sd.command("journalctl", "--follow", "--lines=all", "--output=cat", "--unit="+unit)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return &journal{lines: lines}
}

// await reads the journal until a line contains every one of want, and
// returns it.
func (j *journal) await(t *testing.T, want ...string) string {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case l, ok := <-j.lines:
			if !ok {
				t.Fatalf("journalctl ended before a line with %q", want)
			}
			t.Log("journal: " + l)
			j.seen = append(j.seen, l)
			if kerneltest.ContainsAll(l, want...) {
				return l
			}
		case <-timeout:
			t.Fatalf("no journal line with %q within %v", want, wait)
		}
	}
}

// cgroups lists the cgroup directories under the guest's root.
func cgroups(t *testing.T) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			set[p] = true
		}
		return nil
	})
	return set
}

// removeCgroups removes the cgroups systemd made (deepest first), once its
// processes are gone, so that later tests in the guest find the tree as it
// was.
func removeCgroups(t *testing.T, before map[string]bool) {
	t.Helper()
	var made []string
	for p := range cgroups(t) {
		if !before[p] {
			made = append(made, p)
		}
	}
	slices.SortFunc(made, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, p := range made {
		if err := os.Remove(p); err != nil {
			t.Logf("cgroup %s left: %v", p, err)
		}
	}
}
