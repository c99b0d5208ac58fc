//go:build kernel

package kanto

import (
	"os"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

// installPolicy writes the admin's policy where the hooks read it, for the
// test.
func installPolicy(t *testing.T, content string) {
	t.Helper()
	kerneltest.InstallFile(t, "/etc/kanto-can/config.json", content)
}

// receiversOn counts the CAN receivers registered on a host interface
// (/proc/net/can/rcvlist_all): sockets and gateway rules on it.
func receiversOn(t *testing.T, ifname string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/can/rcvlist_all")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ifname {
			n++
		}
	}
	return n
}

// On a kernel without vxcan ("install vxcan /bin/false", as a Raspberry
// Pi's kernel before 2026-09), the real Kanto with the manifest's hooks and
// KANTO_CAN=can0: the container has can0 (a vcan, bridged by
// kanto-can-daemon) before its entrypoint runs, frames pass both ways with
// the ECU on the emulated Kvaser, the policy's filters each way and its
// rate limit hold; a restart policy's runs each get can0; stop and remove
// leave nothing: no record, no vcan, no socket of the daemon's on can0.
func TestRealKantoBridgeWithoutVxcan(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	k := realKanto(t)
	kerneltest.WithoutModule(t, "vxcan")
	d := startDaemon(t, k.Containerd)
	installPolicy(t, `{"buses": {"can0": {}}, "default": {"buses": {"can0": {"rx": ["100-17F"], "tx": ["101-1FF"], "tx_rate": {"frames_per_second": 10, "burst": 5}}}}}`)
	ecu := kerneltest.Open(t, nil, ecuIf)
	receivers := receiversOn(t, bus)

	c := k.CreateJSON(t, appManifest("bridged-app", serve, []string{"KANTO_CAN=" + bus}, true))
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "ready", 1, wait) // serve fails at once without can0
	ecuBothWays(t, ecu, 0x100, 1)
	d.AwaitLogEver(t, "msg=bridging", "bus="+bus, "inside=can0")
	mine := attachmentsOf(t, c.ID)
	if len(mine) != 1 || mine[0].Mode != attach.ModeBridge || mine[0].Name != c.Name {
		t.Fatalf("ls: %+v, want one bridged attachment named %s", mine, c.Name)
	}

	// Receive filter: 0x180 is not granted (its echo, 0x181, would be).
	ecu.Send(t, frame(0x180, 2))
	ecu.Send(t, frame(0x102, 3))
	ecu.ExpectOnlyUntil(t, nil, frame(0x103, 3), wait)
	// Transmit filter and rate limit, from the container's can0 as its
	// app would send: 0x300 is not granted; of ten granted frames at once
	// the burst passes, and a marker resent until the limit lets it
	// through shows nothing else came.
	c = k.Get(t, c.Name)
	inside := kerneltest.Open(t, kerneltest.ProcessNS(c.State.Pid), "can0")
	inside.Send(t, frame(0x300, 4))
	for i := 0; i < 10; i++ {
		inside.Send(t, frame(0x110+uint32(i), 5))
	}
	got := 0
	for done := false; !done; {
		inside.Send(t, frame(0x1FF, 6))
		for {
			f, err := ecu.Recv(wait / 20)
			if err != nil {
				break
			}
			if f.ID == 0x1FF {
				done = true
				break
			}
			if f.ID == 0x300 {
				t.Fatalf("frame %s outside the transmit grant reached the ECU", f)
			}
			if f.ID >= 0x110 && f.ID < 0x120 {
				got++
			}
		}
	}
	if got < 5 || got > 6 {
		t.Errorf("%d of 10 granted frames sent at once passed the limit of 10/s burst 5; want 5 or 6", got)
	}
	inside.Close()

	k.Stop(t, c.Name)
	requireNothingOfOurs(t)
	if n := receiversOn(t, bus); n != receivers {
		t.Errorf("after stop: %d receivers on %s, %d before: the daemon's bridge socket is left", n, bus, receivers)
	}
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "ready", 2, wait)
	ecuBothWays(t, ecu, 0x104, 7)
	if mine := attachmentsOf(t, c.ID); len(mine) != 1 || mine[0].Mode != attach.ModeBridge {
		t.Fatalf("after a stop and start: %+v, want one bridged attachment", mine)
	}
	k.Remove(t, c.Name)
	requireNothingOfOurs(t)

	// Restart policy always: every run has can0 before its entrypoint.
	check := []string{"/bin/sh", "-c", "/bin/canapp check can0 && exit 1"}
	cycling := k.CreateJSON(t, withRestartPolicy(appManifest("bridged-cycling", check, []string{"KANTO_CAN=" + bus}, true), map[string]any{"type": "always"}))
	k.Start(t, cycling.Name)
	runs := func() []int { return k.Containerd.ExitStatuses(kantotest.Namespace, cycling.ID) }
	k.Containerd.AwaitEvents(t, wait, func() bool { return len(runs()) >= 3 })
	k.MustCM(t, "update", "-n", cycling.Name, "--rp", "no")
	k.WaitState(t, cycling.ID, wait, func(c kantotest.Container) bool { return c.State.Status != kantotest.StatusRunning })
	awaitRuns(t, k, cycling.ID, len(runs()))
	for i, code := range runs() {
		if code != 1 {
			t.Errorf("always: run %d exited %d, want 1 (with can0)", i+1, code)
		}
	}
	k.Remove(t, cycling.Name)
	requireNothingOfOurs(t)
	if n := receiversOn(t, bus); n != receivers {
		t.Errorf("after the removals: %d receivers on %s, %d before: a bridge socket of the daemon's is left", n, bus, receivers)
	}
}

// A bridged container whose network namespace outlives it (a sandbox) and
// whose poststop hook did not run: containerd's exit event makes the daemon
// remove the attachment; the container's process is gone, so only the
// bridge's own socket still reaches the namespace: the daemon deletes the
// vcan through it and closes the bridge. Nothing is left: no record, no
// vcan in the namespace, no receiver of the daemon's on the bus.
func TestBridgeCleanedUpAfterAContainerWhoseNamespaceLivesOn(t *testing.T) {
	kerneltest.VCAN(t, "kgoneb", 16)
	installPolicy(t, `{"buses": {"kgoneb": {"bridge": "always"}}, "default": {"buses": {"kgoneb": {}}}}`)
	c := env(t)
	d := startDaemon(t, c)
	sandbox := kerneltest.NewNS(t)
	prestartOnly := hooks(t)
	prestartOnly.Poststop = nil
	ct := c.Run(t, ns, "sandboxed-bridge", ctrtest.Spec{Image: imageRef, Args: serve, Env: []string{"KANTO_CAN=kgoneb:can0"},
		Hooks: prestartOnly, NetNS: sandbox.Path()})
	ct.WaitOutput(t, "ready", wait)
	if list := ls(t); len(list) != 1 || list[0].Container != "sandboxed-bridge" || list[0].Mode != attach.ModeBridge {
		t.Fatalf("attachments: %+v", list)
	}
	host := kerneltest.Open(t, nil, "kgoneb")
	host.Send(t, frame(0x100, 1))
	host.Expect(t, []kerneltest.Frame{frame(0x101, 1)}, wait) // serve answers id+1
	ct.Stop(t)
	d.AwaitLog(t, "msg=reconciled", "container event", "removed=kcan")
	d.AwaitLogEver(t, `msg="bridge stopped"`)
	requireNothingOfOurs(t)
	if _, _, code := kerneltest.Run(t, "ip", "-n", sandbox.Name(), "link", "show", "can0"); code == 0 {
		t.Fatal("can0 is still in the sandbox namespace")
	}
	if n := receiversOn(t, "kgoneb"); n != 1 { // the test's own socket
		t.Errorf("%d receivers on kgoneb, want 1 (the test's): the daemon's bridge socket is left", n)
	}
}
