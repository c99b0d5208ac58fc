//go:build kernel

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
)

// fakeContainer is what runc hands a hook: a process in a new network
// namespace and a bundle whose config.json has the process environment.
type fakeContainer struct {
	id     string
	cmd    *exec.Cmd
	bundle string
}

func newFakeContainer(t *testing.T, id string, env []string, hostNet bool) *fakeContainer {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if !hostNet {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	bundle := t.TempDir()
	spec, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "process": map[string]any{"env": env, "args": []string{"sleep"}}})
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	return &fakeContainer{id: id, cmd: cmd, bundle: bundle}
}

// hook runs `kanto-can hook PHASE args...` the way runc does: the state on
// stdin and an empty environment (no PATH).
func (c *fakeContainer) hook(t *testing.T, status string, args ...string) (stderr string, exit int) {
	t.Helper()
	st, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": c.id, "status": status, "pid": c.cmd.Process.Pid, "bundle": c.bundle})
	cmd := exec.Command(kerneltest.Binary(t), append([]string{"hook"}, args...)...)
	cmd.Env = []string{}
	cmd.Stdin = strings.NewReader(string(st))
	_, errOut, code := kerneltest.RunCmd(t, cmd)
	return errOut, code
}

func (c *fakeContainer) nsPath() string {
	return "/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/ns/net"
}

func TestHookAttachesAndDetaches(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "hookbus", 72)
	c := newFakeContainer(t, "hook-app", []string{"KANTO_CAN=hookbus:can0,rx=100-1FF"}, false)
	if errOut, code := c.hook(t, "creating", "prestart"); code != 0 {
		t.Fatalf("prestart hook: exit %d: %s", code, errOut)
	}
	f := openPath(t, c.nsPath())
	if l, err := dialIn(t, f).LinkByName("can0"); err != nil || !l.Up || l.MTU != 72 {
		t.Fatalf("can0 in the container: %+v, %v", l, err)
	}
	a := lsOne(t, "hookbus")
	if a.Container != "hook-app" || a.Label != "container hook-app" {
		t.Fatalf("attachment %+v does not record the container", a)
	}
	// Running the hook again (a retried start) changes nothing.
	before := snapshot(t, nil)
	if _, code := c.hook(t, "creating", "prestart"); code != 0 || snapshot(t, nil) != before {
		t.Fatal("second prestart changed the kernel state")
	}
	if errOut, code := c.hook(t, "stopped", "poststop"); code != 0 {
		t.Fatalf("poststop hook: exit %d: %s", code, errOut)
	}
	requireNothingOfOurs(t)
}

// A required bus that does not exist and a malformed KANTO_CAN fail the
// hook with one line that names the problem, leaving nothing behind; an
// optional missing bus still gets its interface.
func TestHookRequiredOptionalAndMalformed(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "hookbus2", 16)
	for _, tc := range []struct {
		env, want string
	}{
		{"KANTO_CAN=hookbus2;nosuch7", "host bus nosuch7 does not exist"},
		{"KANTO_CAN=hookbus2,rx=800", "KANTO_CAN: bus 1:"},
		{"KANTO_CAN=", "no bus requested"},
		{"OTHER=1", "no bus requested"},
	} {
		c := newFakeContainer(t, "bad-app", []string{tc.env}, false)
		before := snapshot(t, nil)
		errOut, code := c.hook(t, "creating", "prestart")
		msg := strings.TrimRight(errOut, "\n")
		if code == 0 || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") || !strings.Contains(msg, "container bad-app") {
			t.Errorf("%s: exit %d, stderr %q; want one line naming the container and %q", tc.env, code, msg, tc.want)
		}
		if after := snapshot(t, nil); after != before {
			t.Errorf("%s: the failed hook left something behind", tc.env)
		}
	}
	c := newFakeContainer(t, "opt-app", []string{"KANTO_CAN=hookbus2;nosuch8:can1,optional"}, false)
	if errOut, code := c.hook(t, "creating", "prestart"); code != 0 {
		t.Fatalf("optional missing bus: exit %d: %s", code, errOut)
	}
	conn := dialIn(t, openPath(t, c.nsPath()))
	for _, name := range []string{"hookbus2", "can1"} {
		if _, err := conn.LinkByName(name); err != nil {
			t.Errorf("%s in the container: %v", name, err)
		}
	}
	if _, code := c.hook(t, "stopped"); code != 0 { // status decides
		t.Fatal("poststop by status failed")
	}
	requireNothingOfOurs(t)
}

// runc does not cap container ids. A 250-byte id (it once panicked the
// hook) fails the start with one line naming the problem and leaves
// nothing; a 64-byte id (Docker's) is attached as any other.
func TestHookLongContainerID(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "hookbus5", 16)
	long := newFakeContainer(t, strings.Repeat("a", 250), []string{"KANTO_CAN=hookbus5"}, false)
	before := snapshot(t, nil)
	errOut, code := long.hook(t, "creating", "prestart")
	msg := strings.TrimRight(errOut, "\n")
	if code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, "container id of 250 bytes is too long") {
		t.Errorf("250-byte id: exit %d, stderr %q; want one line about the id's length", code, msg)
	}
	if after := snapshot(t, nil); after != before {
		t.Errorf("250-byte id: the failed hook left something behind")
	}
	docker := newFakeContainer(t, strings.Repeat("0123456789abcdef", 4), []string{"KANTO_CAN=hookbus5"}, false)
	if errOut, code := docker.hook(t, "creating", "prestart"); code != 0 {
		t.Fatalf("64-byte id: exit %d: %s", code, errOut)
	}
	if a := lsOne(t, "hookbus5"); a.Container != docker.id {
		t.Errorf("64-byte id: attachment records container %q", a.Container)
	}
	if errOut, code := docker.hook(t, "stopped", "poststop"); code != 0 {
		t.Fatalf("poststop: exit %d: %s", code, errOut)
	}
	requireNothingOfOurs(t)
}

func TestHookHostNetworkDoesNothing(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "hookbus3", 72)
	c := newFakeContainer(t, "host-app", []string{"KANTO_CAN=hookbus3"}, true)
	before := snapshot(t, nil)
	errOut, code := c.hook(t, "creating", "prestart")
	if code != 0 || !strings.Contains(errOut, "host's network namespace") {
		t.Fatalf("host network: exit %d, %q", code, errOut)
	}
	if snapshot(t, nil) != before {
		t.Fatal("the hook changed something for a host-network container")
	}
}

// The hook goes through the policy too: a container asking for a bus it is
// not granted does not start, and the error names the bus.
func TestHookEnforcesPolicy(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "hookpol", 16)
	pol := writePolicy(t, `{"buses": {"hookpol": {}}, "containers": [{"match": "allowed-*", "buses": {"hookpol": {"dir": "rx"}}}]}`)
	denied := newFakeContainer(t, "denied-app", []string{"KANTO_CAN=hookpol"}, false)
	before := snapshot(t, nil)
	errOut, code := denied.hook(t, "creating", "prestart", "--config", pol)
	if code == 0 || !strings.Contains(errOut, "policy: container denied-app may not use bus hookpol") {
		t.Fatalf("denied container: exit %d, %q", code, errOut)
	}
	if snapshot(t, nil) != before {
		t.Fatal("a denied hook left something behind")
	}
	ok := newFakeContainer(t, "allowed-app", []string{"KANTO_CAN=hookpol"}, false)
	if errOut, code := ok.hook(t, "creating", "prestart", "--config", pol); code != 0 {
		t.Fatalf("allowed container: exit %d, %q", code, errOut)
	}
	if a := lsOne(t, "hookpol"); a.Direction() != "rx" {
		t.Errorf("granted dir=rx, got %s", a.Direction())
	}
	ok.hook(t, "stopped", "poststop")
}

// poststop usually runs after the container's namespace, and with it the
// pair, is gone: the hook still forgets the container's records.
func TestHookPoststopAfterTheNamespaceIsGone(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "hookgone", 16)
	c := newFakeContainer(t, "gone-app", []string{"KANTO_CAN=hookgone"}, false)
	if errOut, code := c.hook(t, "creating", "prestart"); code != 0 {
		t.Fatalf("prestart: %s", errOut)
	}
	links, _ := leftover.Ours(t)
	c.cmd.Process.Kill()
	c.cmd.Wait()
	// The namespace goes away asynchronously: await the host end's removal.
	kerneltest.AwaitLinkGone(t, links[0], wait)
	if errOut, code := c.hook(t, "stopped", "poststop"); code != 0 {
		t.Fatalf("poststop: %s", errOut)
	}
	requireNothingOfOurs(t)
}
