//go:build kernel

package kanto

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

// Hooks from the manifest: the container gets can0 before its entrypoint,
// and frames flow both ways with the emulated ECU on can1 (hardware).
func TestManifestHooksECUBothWays(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	c := env(t)
	ecu := kerneltest.Open(t, nil, ecuIf)
	ct := c.Run(t, ns, "can-app", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=" + bus}, Hooks: hooks(t)})
	ct.WaitOutput(t, "ready", wait)
	ecu.Send(t, frame(0x123, 1, 2))
	ecu.Send(t, kerneltest.Frame{ID: 0x18DAF110, Extended: true, Data: []byte{3}})
	ecu.Expect(t, []kerneltest.Frame{frame(0x124, 1, 2), {ID: 0x18DAF111, Extended: true, Data: []byte{3}}}, wait)
	ct.Stop(t)
	requireNothingOfOurs(t)
}

// On an FD bus classic and FD frames pass both ways.
func TestManifestHooksFDBus(t *testing.T) {
	kerneltest.VCAN(t, "kfdbus", 72)
	c := env(t)
	host := kerneltest.Open(t, nil, "kfdbus")
	ct := c.Run(t, ns, "fd-app", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=kfdbus:can0"}, Hooks: hooks(t)})
	ct.WaitOutput(t, "ready", wait)
	fd := kerneltest.Frame{ID: 0x200, FD: true, Data: make([]byte, 48)}
	host.Send(t, fd)
	host.Send(t, frame(0x300, 9))
	host.Expect(t, []kerneltest.Frame{{ID: 0x201, FD: true, Data: make([]byte, 48)}, frame(0x301, 9)}, wait)
	ct.Stop(t)
	requireNothingOfOurs(t)
}

// The entrypoint's first action checks for can0 and exits non-zero without
// it: without kanto-can every start fails, with the hook every one of 20
// starts succeeds, and stop leaves nothing of ours. (TestDaemonSoak runs
// the same cycle 30 times more, with the daemon; make soak, 1000 times.)
func TestStartsAndRestarts(t *testing.T) {
	kerneltest.VCAN(t, "krbus", 16)
	c := env(t)
	check := []string{"/bin/canapp", "check", "can0"}
	control := c.Run(t, ns, "no-hook", ctrtest.Spec{Image: imageRef, Args: check, Env: []string{"KANTO_CAN=krbus:can0"}})
	if code := control.Wait(t, wait); code != 3 {
		t.Fatalf("without kanto-can the check exited %d, want 3: the test could not fail", code)
	}
	control.Stop(t)
	starts := 20
	if testing.Short() {
		starts = 5
	}
	for i := 0; i < starts; i++ {
		ct := c.Run(t, ns, "restarted", ctrtest.Spec{Image: imageRef, Args: check, Env: []string{"KANTO_CAN=krbus:can0"}, Hooks: hooks(t)})
		if code := ct.Wait(t, wait); code != 0 {
			t.Fatalf("start %d: entrypoint exited %d: %s", i+1, code, ct.Output())
		}
		ct.Stop(t)
		if left := oursLeft(t); left != "" {
			t.Fatalf("after stop %d: left behind: %s", i+1, left)
		}
	}
	if list := ls(t); len(list) != 0 {
		t.Fatalf("records left: %+v", list)
	}
}

// Two and then ten containers on one bus all receive the same frames, and
// each one's transmissions reach the bus; the gateway's counters agree.
func TestManyContainersShareABus(t *testing.T) {
	kerneltest.VCAN(t, "kmany", 72)
	c := env(t)
	host := kerneltest.Open(t, nil, "kmany")
	var running []*ctrtest.Container
	for _, n := range []int{2, 10} {
		for len(running) < n {
			id := "many-" + itoa(len(running))
			ct := c.Run(t, ns, id, ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=kmany:can0"}, Hooks: hooks(t)})
			ct.WaitOutput(t, "ready", wait)
			running = append(running, ct)
		}
		id := uint32(0x100 + 2*n)
		host.Send(t, frame(id, byte(n)))
		want := make([]kerneltest.Frame, n)
		for i := range want {
			want[i] = frame(id+1, byte(n))
		}
		host.Expect(t, want, wait)
		list := ls(t)
		if len(list) != n {
			t.Fatalf("%d attachments, want %d", len(list), n)
		}
		for _, a := range list {
			rx, tx := uint32(0), uint32(0)
			for _, r := range a.Rules {
				if r.Direction == "rx" {
					rx += r.Handled
				} else {
					tx += r.Handled
				}
			}
			if rx == 0 || tx == 0 {
				t.Errorf("%s: rx handled %d, tx handled %d: want each container to have received and sent", a.Container, rx, tx)
			}
		}
	}
	for _, ct := range running {
		ct.Stop(t)
	}
	requireNothingOfOurs(t)
}

// A required bus that does not exist, or a malformed KANTO_CAN: the start
// fails, the error names the problem, nothing is left. An optional missing
// bus: the start succeeds and the interface exists.
func TestBadRequestsFailTheStart(t *testing.T) {
	kerneltest.VCAN(t, "kbad", 16)
	c := env(t)
	for _, tc := range []struct{ env, want string }{
		{"KANTO_CAN=kbad;nosuch7", "host bus nosuch7 does not exist"},
		{"KANTO_CAN=kbad,rx=800", "rx: 800 is beyond the 11-bit range"},
	} {
		errOut, err := c.RunErr(t, ns, "bad-app", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{tc.env}, Hooks: hooks(t)})
		if err == nil {
			t.Fatalf("%s: the container started", tc.env)
		}
		if !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "kanto-can: container bad-app") {
			t.Errorf("%s: error %q does not name the problem (%q)", tc.env, errOut, tc.want)
		}
		requireNothingOfOurs(t)
	}
	ct := c.Run(t, ns, "opt-app", ctrtest.Spec{Image: imageRef,
		Args: []string{"/bin/sh", "-c", "/bin/canapp check can0 && /bin/canapp check can7"},
		Env:  []string{"KANTO_CAN=kbad:can0;nosuch8:can7,optional"}, Hooks: hooks(t)})
	if code := ct.Wait(t, wait); code != 0 {
		t.Fatalf("optional missing bus: entrypoint exited %d: %s", code, ct.Output())
	}
	ct.Stop(t)
	requireNothingOfOurs(t)
}

// With kanto-can installed as runc: a container with only KANTO_CAN in its
// environment gets its hooks and can0; one without KANTO_CAN, or in another
// namespace, runs exactly as with plain runc (same config.json, same exit
// code).
func TestRuncWrapper(t *testing.T) {
	kerneltest.VCAN(t, "kwrap", 72)
	wrapped := env(t, wrapperDir(t))
	plain := env(t)
	host := kerneltest.Open(t, nil, "kwrap")

	ct := wrapped.Run(t, ns, "env-only", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=kwrap:can0"}})
	ct.WaitOutput(t, "ready", wait)
	host.Send(t, frame(0x42, 1))
	host.Expect(t, []kerneltest.Frame{frame(0x43, 1)}, wait)
	ct.Stop(t)
	requireNothingOfOurs(t)

	// Without KANTO_CAN: the same spec through both containerds.
	exit7 := ctrtest.Spec{Image: imageRef, Args: []string{"/bin/sh", "-c", "echo plain; exit 7"}, Env: []string{"OTHER=1"}}
	specs := map[string]string{}
	for name, c := range map[string]*ctrtest.Containerd{"wrapped": wrapped, "plain": plain} {
		ct := c.Run(t, ns, "no-can", exit7)
		b, err := os.ReadFile(filepath.Join(ct.Bundle(), "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		// Only where this containerd keeps its files may differ.
		specs[name] = strings.ReplaceAll(string(b), filepath.Dir(c.Root()), "DIR")
		if code := ct.Wait(t, wait); code != 7 {
			t.Errorf("%s: exit %d, want 7", name, code)
		}
		ct.Stop(t)
	}
	if specs["wrapped"] != specs["plain"] {
		t.Errorf("config.json through the wrapper differs from plain runc's:\n%s\n%s", specs["wrapped"], specs["plain"])
	}
	// Another namespace: KANTO_CAN is not served there.
	ctrtest.BuildImage(t, wrapped, "other-ns", imageRef, map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)})
	other := wrapped.Run(t, "other-ns", "elsewhere", ctrtest.Spec{Image: imageRef, Args: []string{"/bin/canapp", "check", "can0"}, Env: []string{"KANTO_CAN=kwrap:can0"}})
	if code := other.Wait(t, wait); code != 3 {
		t.Errorf("container in another namespace: exit %d, want 3 (untouched, no can0)", code)
	}
	b, _ := os.ReadFile(filepath.Join(other.Bundle(), "config.json"))
	if strings.Contains(string(b), "kanto-can") {
		t.Errorf("hooks were added in another namespace: %s", b)
	}
	other.Stop(t)
	requireNothingOfOurs(t)
}
