//go:build kernel

package kanto

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
	"golang.org/x/sys/unix"
)

// The tests in this file run Eclipse Kanto's own container-management and
// kanto-cm (package kantotest): every container is created, started,
// stopped and removed by Kanto, as on a device.

// exampleImage is the image the manifests of examples/kanto name. The guest
// cannot pull it: a stand-in with busybox (sh, test, echo, sleep: all their
// command uses) is imported under that name, so the manifests run as they
// are in the repository.
const exampleImage = "docker.io/library/ubuntu:22.04"

// installedHook is where the examples' hooks find kanto-can.
const installedHook = "/usr/bin/kanto-can"

// realKanto starts Kanto with the test images and kanto-can installed at
// installedHook (the guest's root is a writable overlay).
func realKanto(t *testing.T, opts ...kantotest.Option) *kantotest.Kanto {
	t.Helper()
	kerneltest.Require(t)
	if err := os.Symlink(kerneltest.Binary(t), installedHook); err != nil {
		t.Fatalf("install kanto-can: %v", err)
	}
	t.Cleanup(func() { os.Remove(installedHook) })
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)}
	opts = append(opts, kantotest.WithImage(imageRef, files), kantotest.WithImage(exampleImage, files))
	return kantotest.Start(t, opts...)
}

// manifest is a Kanto container JSON for the test image.
type manifest map[string]any

// appManifest is a container named name running cmd, with the manifest's
// hooks when withHooks, env as its environment, on Kanto's default
// (bridge) network.
func appManifest(name string, cmd []string, env []string, withHooks bool) manifest {
	m := manifest{
		"container_name": name,
		"image":          map[string]any{"name": imageRef},
		"host_config":    map[string]any{"network_mode": "bridge"},
		"config":         map[string]any{"env": env, "cmd": cmd},
	}
	if withHooks {
		m["hooks"] = []map[string]any{
			{"path": installedHook, "args": []string{"kanto-can", "hook", "prestart"}, "type": 0},
			{"path": installedHook, "args": []string{"kanto-can", "hook", "poststop"}, "type": 2},
		}
	}
	return m
}

// ecuBothWays checks that a frame from the emulated ECU reaches the
// container's can0 and that the container's answer (canapp serve: id+1)
// reaches the ECU.
func ecuBothWays(t *testing.T, ecu *kerneltest.Socket, id uint32, data byte) {
	t.Helper()
	ecu.Send(t, frame(id, data))
	ecu.Expect(t, []kerneltest.Frame{frame(id+1, data)}, wait)
}

// attachmentsOf returns ls's attachments of the container with this id.
func attachmentsOf(t *testing.T, id string) []attach.Attachment {
	t.Helper()
	var mine []attach.Attachment
	for _, a := range ls(t) {
		if a.Container == id {
			mine = append(mine, a)
		}
	}
	return mine
}

// The examples of examples/kanto, unchanged, with the real kanto-cm: the
// one with hooks, and the env-only one through kanto-can installed as runc.
// Each entrypoint sees can0 first thing; frames pass both ways between the
// emulated ECU and the container's can0; ls names them; removing them
// leaves nothing of ours.
func TestRealKantoExamples(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	if bus != "can0" {
		t.Fatalf("the examples ask for can0; the emulated bus is %s", bus)
	}
	k := realKanto(t, kantotest.WithPath(wrapperDir(t)))
	ecu := kerneltest.Open(t, nil, ecuIf)
	for i, file := range []string{"can-ubuntu-hooks.json", "can-ubuntu-env-only.json"} {
		c := k.Create(t, filepath.Join("..", "..", "examples", "kanto", file))
		k.Start(t, c.Name)
		out := k.WaitLog(t, c.ID, "can0 is here", 1, wait)
		if strings.Contains(out, "no can0") {
			t.Fatalf("%s: the entrypoint ran before can0 existed: %s", file, out)
		}
		c = k.Get(t, c.Name)
		// Kanto's bridge network (its own prestart hook) and ours, both:
		// the container has its bridge interface and can0.
		links, errs, code := kerneltest.RunCmd(t, kerneltest.ProcessNS(c.State.Pid).Command("ip", "-brief", "link"))
		if code != 0 || !strings.Contains(links, "eth0@") || !strings.Contains(links, "can0@") {
			t.Errorf("%s: the container's links (want eth0 on Kanto's bridge and can0): %s%s", file, links, errs)
		}
		// The container's can0, used from outside as its app would.
		inside := kerneltest.Open(t, kerneltest.ProcessNS(c.State.Pid), "can0")
		id := uint32(0x120 + 2*i)
		ecu.Send(t, frame(id, byte(i)))
		inside.Expect(t, []kerneltest.Frame{frame(id, byte(i))}, wait)
		inside.Send(t, frame(id+1, byte(i)))
		ecu.Expect(t, []kerneltest.Frame{frame(id+1, byte(i))}, wait)
		inside.Close()

		mine := attachmentsOf(t, c.ID)
		if len(mine) == 0 || mine[0].Name != c.Name {
			t.Fatalf("%s: ls shows %+v, want attachments named %s", file, mine, c.Name)
		}
	}
	// The env-only example also asks for can1 as vcan0, receive-only.
	env := k.Get(t, "can-ubuntu-env")
	var buses []string
	for _, a := range attachmentsOf(t, env.ID) {
		buses = append(buses, a.HostBus+":"+a.Inside+":"+a.Direction())
	}
	if got := strings.Join(buses, " "); got != "can0:can0:both can1:vcan0:rx" {
		t.Errorf("can-ubuntu-env's attachments: %s", got)
	}
	out := kerneltest.MustRun(t, kerneltest.Binary(t), "ls")
	for _, want := range []string{"container can-ubuntu ", "container can-ubuntu-env "} {
		if !strings.Contains(out, want) {
			t.Errorf("ls does not show %q:\n%s", want, out)
		}
	}
	k.Remove(t, "can-ubuntu")
	k.Remove(t, "can-ubuntu-env")
	requireNothingOfOurs(t)
}

// By Kanto name and id: attach, ls, ls NAME, detach, policy check and
// policy entries that match the Kanto name, for a container kanto-cm made
// without hooks. Bad input (an unknown name, a stopped container, one on the
// host's network) gives a one-line error, a non-zero exit, and changes
// nothing.
func TestRealKantoByName(t *testing.T) {
	kerneltest.VCAN(t, "knamed", 16)
	kerneltest.VCAN(t, "kdenied", 16)
	k := realKanto(t)
	host := kerneltest.Open(t, nil, "knamed")
	kc := kerneltest.Binary(t)

	c := k.CreateJSON(t, appManifest("telemetry-app", sleeper, nil, false))
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "up", 1, wait)
	c = k.Get(t, c.Name)
	// A policy written in Kanto names: telemetry-* may use knamed.
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	writeJSON(t, policyFile, map[string]any{
		"buses":      map[string]any{"knamed": map[string]any{}, "kdenied": map[string]any{}},
		"containers": []map[string]any{{"match": []string{"telemetry-*"}, "buses": map[string]any{"knamed": map[string]any{}}}},
	})
	out := kerneltest.MustRun(t, kc, "--config", policyFile, "policy", "check", c.Name, c.ID)
	rows := fields(out)
	for _, ref := range []string{c.Name, c.ID} {
		if r := rows[ref]; len(r) < 4 || r[1] != "containers[0]" || r[3] != "knamed" {
			t.Errorf("policy check %s: not matched by the entry for telemetry-*:\n%s", ref, out)
		}
	}

	for i, ref := range []string{c.Name, c.ID} {
		kerneltest.MustRun(t, kc, "--config", policyFile, "attach", ref, "--bus", "knamed:can7")
		mine := attachmentsOf(t, c.ID)
		if len(mine) != 1 || mine[0].Name != c.Name || mine[0].Label != "container "+c.Name {
			t.Fatalf("attach %s: ls %+v", ref, mine)
		}
		// ls NAME shows the container's attachments; ls of another, none.
		for filter, want := range map[string]bool{c.Name: true, "other-app": false} {
			out, _, _ := kerneltest.Run(t, kc, "ls", filter)
			if strings.Contains(out, "knamed") != want {
				t.Errorf("ls %s: %q", filter, out)
			}
		}
		if out := kerneltest.MustRun(t, kc, "status"); !strings.Contains(out, "container "+c.Name) {
			t.Errorf("status does not name the container:\n%s", out)
		}
		// Both ways between the host bus and the container's can7.
		inside := kerneltest.Open(t, kerneltest.ProcessNS(c.State.Pid), "can7")
		host.Send(t, frame(0x300+uint32(i), 1))
		inside.Expect(t, []kerneltest.Frame{frame(0x300+uint32(i), 1)}, wait)
		inside.Send(t, frame(0x310+uint32(i), 2))
		host.Expect(t, []kerneltest.Frame{frame(0x310+uint32(i), 2)}, wait)
		inside.Close()
		// The policy matches the Kanto name: kdenied is not granted.
		_, errOut, code := kerneltest.Run(t, kc, "--config", policyFile, "attach", ref, "--bus", "kdenied:can8")
		if code == 0 || !strings.Contains(errOut, "container "+c.Name) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("attach %s to an ungranted bus: exit %d, %q", ref, code, errOut)
		}
		kerneltest.MustRun(t, kc, "detach", ref)
		if left := oursLeft(t); left != "" {
			t.Fatalf("detach %s: left %s", ref, left)
		}
	}

	// kanto-cm rename: ls shows the new name at once (names are read from
	// Kanto's records at each listing).
	kerneltest.MustRun(t, kc, "attach", c.Name, "--bus", "knamed:can7")
	k.MustCM(t, "rename", c.ID, "telemetry-renamed")
	if mine := attachmentsOf(t, c.ID); len(mine) != 1 || mine[0].Name != "telemetry-renamed" {
		t.Errorf("after kanto-cm rename: ls %+v", mine)
	}
	kerneltest.MustRun(t, kc, "detach", "telemetry-renamed")
	requireNothingOfOurs(t)
	c.Name = "telemetry-renamed"

	// Bad input: each a one-line error naming the problem; nothing changes.
	stopped := k.CreateJSON(t, appManifest("stopped-app", sleeper, nil, false))
	hostNet := appManifest("host-app", sleeper, []string{"KANTO_CAN=knamed"}, true)
	hostNet["host_config"] = map[string]any{"network_mode": "host"}
	hn := k.CreateJSON(t, hostNet)
	k.Start(t, hn.Name)
	k.WaitLog(t, hn.ID, "up", 1, wait)
	if list := ls(t); len(list) != 0 {
		t.Errorf("a container on the host's network got attachments: %+v", list)
	}
	for _, tc := range []struct{ ref, want string }{
		{"no-such-app", "container no-such-app: no such container"},
		{stopped.Name, "container stopped-app is created, not running: start it first"},
		{hn.Name, "container host-app uses the host's network (network_mode host)"},
	} {
		before := snapshot(t)
		_, errOut, code := kerneltest.Run(t, kc, "attach", tc.ref, "--bus", "knamed")
		if code == 0 || !strings.HasPrefix(errOut, "kanto-can: "+tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("attach %s: exit %d, %q; want one line starting %q", tc.ref, code, errOut, "kanto-can: "+tc.want)
		}
		if after := snapshot(t); after != before {
			t.Errorf("attach %s changed the kernel's state:\n%s\n%s", tc.ref, before, after)
		}
	}
	k.Remove(t, c.Name)
	k.Remove(t, stopped.Name)
	k.Remove(t, hn.Name)
	requireNothingOfOurs(t)
}

// sleeper is an entrypoint that says "up" and waits to be stopped.
var sleeper = []string{"/bin/sh", "-c", "echo up; exec sleep 600"}

// fields splits a table into rows of whitespace-separated fields, keyed
// by their first field.
func fields(out string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	return rows
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot is the host's links and gateway rules as ip and cangw show
// them (independent witnesses; cangw -L exits non-zero even when it lists).
func snapshot(t *testing.T) string {
	t.Helper()
	links := kerneltest.MustRun(t, "ip", "-o", "link", "show")
	rules, errs, _ := kerneltest.Run(t, "cangw", "-L")
	if errs != "" {
		t.Fatalf("cangw -L: %s", errs)
	}
	return links + rules
}

// withRestartPolicy sets a manifest's restart policy (bridge network kept).
func withRestartPolicy(m manifest, policy map[string]any) manifest {
	m["host_config"] = map[string]any{"network_mode": "bridge", "restart_policy": policy}
	return m
}

// Kanto's restart policies start a new task each time: the interface is
// there before the entrypoint in every run, `always` and `on-failure`
// alike; after the last run nothing of ours is left. The runs are counted
// by containerd's task exit events: each run exits 1 with can0, 3 without.
func TestRealKantoRestartPolicies(t *testing.T) {
	kerneltest.VCAN(t, "krestart", 16)
	k := realKanto(t)
	check := []string{"/bin/sh", "-c", "/bin/canapp check can0 && exit 1"}
	env := []string{"KANTO_CAN=krestart:can0"}
	always := k.CreateJSON(t, withRestartPolicy(appManifest("always-app", check, env, true), map[string]any{"type": "always"}))
	onFailure := k.CreateJSON(t, withRestartPolicy(appManifest("onfailure-app", check, env, true),
		map[string]any{"type": "on-failure", "maximum_retry_count": 2}))
	k.Start(t, always.Name)
	k.Start(t, onFailure.Name)
	runs := func(id string) []int { return k.Containerd.ExitStatuses(kantotest.Namespace, id) }

	// on-failure with 2 retries: 3 runs, then Kanto leaves it exited.
	awaitRuns(t, k, onFailure.ID, 3)
	k.WaitState(t, onFailure.ID, wait, func(c kantotest.Container) bool {
		return c.State.Status == kantotest.StatusExited && c.RestartCount == 2
	})
	if got := fmt.Sprint(runs(onFailure.ID)); got != "[1 1 1]" {
		t.Errorf("on-failure: exit statuses %s, want [1 1 1] (3 runs, each with can0)", got)
	}
	for _, a := range ls(t) {
		if a.Container == onFailure.ID {
			t.Errorf("on-failure: after its last run, still attached: %+v", a)
		}
	}
	// always: 3 runs, each with can0; then the policy is set to "no" and
	// the last run ends. (kanto-cm remove while Kanto restarts a
	// container can leave its last task undeleted, and so without its
	// poststop hook: a race in Kanto, which the kanto-can daemon covers.)
	k.Containerd.AwaitEvents(t, wait, func() bool { return len(runs(always.ID)) >= 3 })
	k.MustCM(t, "update", "-n", always.Name, "--rp", "no")
	k.WaitState(t, always.ID, wait, func(c kantotest.Container) bool { return c.State.Status != kantotest.StatusRunning })
	awaitRuns(t, k, always.ID, len(runs(always.ID)))
	for i, code := range runs(always.ID) {
		if code != 1 {
			t.Errorf("always: run %d exited %d, want 1 (with can0)", i+1, code)
		}
	}
	requireNothingOfOurs(t)
	k.Remove(t, always.Name)
	k.Remove(t, onFailure.Name)
	requireNothingOfOurs(t)
}

// kanto-cm stop and start, Kanto's daemon restarted while the container
// runs (it restores the container: the same process goes on, its
// attachment stays, exactly once), kanto-cm update of an exited container's
// restart policy (Kanto starts it again: the interface is there), and
// remove: nothing of ours is left after each stop and after the removal.
func TestRealKantoLifecycle(t *testing.T) {
	kerneltest.VCAN(t, "klife", 72)
	k := realKanto(t)
	host := kerneltest.Open(t, nil, "klife")
	c := k.CreateJSON(t, appManifest("life-app", serve, []string{"KANTO_CAN=klife:can0"}, true))

	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "ready", 1, wait)
	ecuBothWays(t, host, 0x100, 1)
	k.Stop(t, c.Name)
	requireNothingOfOurs(t)
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "ready", 2, wait)
	ecuBothWays(t, host, 0x102, 2)

	// Kanto's daemon crashes (SIGKILL): the container runs on, the new
	// daemon restores it; its attachment stays as it was, once.
	before := k.Get(t, c.Name)
	k.Restart(t, unix.SIGKILL)
	if after := k.Get(t, c.Name); after.State.Status != kantotest.StatusRunning || after.State.Pid != before.State.Pid {
		t.Fatalf("after Kanto's crash: status %d pid %d, want running pid %d", after.State.Status, after.State.Pid, before.State.Pid)
	}
	requireOneAttachment(t, c)
	ecuBothWays(t, host, 0x104, 3)
	// Kanto's daemon restarted (SIGTERM): it stops the container on its way
	// out and starts it again (restart policy unless-stopped, the
	// default): a new run, with its interface, once.
	k.Restart(t, unix.SIGTERM)
	k.WaitLog(t, c.ID, "ready", 3, wait)
	requireOneAttachment(t, c)
	ecuBothWays(t, host, 0x106, 4)
	k.Remove(t, c.Name)
	requireNothingOfOurs(t)

	// Restart policy "no": the container runs once and exits. Updated to
	// on-failure with one retry, Kanto starts it again at once.
	once := k.CreateJSON(t, withRestartPolicy(appManifest("update-app", []string{"/bin/sh", "-c", "/bin/canapp check can0 && exit 1"},
		[]string{"KANTO_CAN=klife:can0"}, true), map[string]any{"type": "no"}))
	k.Start(t, once.Name)
	awaitRuns(t, k, once.ID, 1)
	requireNothingOfOurs(t)
	k.MustCM(t, "update", "-n", once.Name, "--rp", "on-failure", "--rp-cnt", "1")
	awaitRuns(t, k, once.ID, 2)
	k.WaitState(t, once.ID, wait, func(c kantotest.Container) bool {
		return c.State.Status == kantotest.StatusExited && c.RestartCount == 1
	})
	if got := fmt.Sprint(k.Containerd.ExitStatuses(kantotest.Namespace, once.ID)); got != "[1 1]" {
		t.Errorf("update: exit statuses %s, want [1 1] (both runs with can0)", got)
	}
	requireNothingOfOurs(t)
	k.Remove(t, once.Name)
	requireNothingOfOurs(t)
}

// A container's process dies while Kanto's daemon is down (frozen, then
// crashed): nothing deleted its task, so runc has not run the poststop
// hook, and its attachment is still there. The new daemon finds the exit,
// deletes the task (the hook detaches) and applies the restart policy ("no":
// the container stays exited); a start attaches it again. kantotest relies
// on this when Kanto misses an exit while stopping a container.
func TestRealKantoExitWhileDown(t *testing.T) {
	kerneltest.VCAN(t, "kdown", 72)
	k := realKanto(t)
	host := kerneltest.Open(t, nil, "kdown")
	c := k.CreateJSON(t, withRestartPolicy(appManifest("down-app", serve, []string{"KANTO_CAN=kdown:can0"}, true), map[string]any{"type": "no"}))
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "ready", 1, wait)
	ecuBothWays(t, host, 0x300, 1)

	k.Freeze(t)
	deletes := k.Containerd.ContainerDeletes(kantotest.Namespace, c.ID)
	k.Containerd.Ctr(t, "-n", kantotest.Namespace, "tasks", "kill", "-s", "SIGKILL", c.ID)
	k.Containerd.AwaitEvents(t, wait, func() bool { return len(k.Containerd.ExitStatuses(kantotest.Namespace, c.ID)) == 1 })
	requireOneAttachment(t, c)

	k.Restart(t, unix.SIGKILL)
	k.Containerd.AwaitEvents(t, wait, func() bool { return k.Containerd.ContainerDeletes(kantotest.Namespace, c.ID) > deletes })
	k.WaitState(t, c.ID, wait, func(c kantotest.Container) bool { return c.State.Status == kantotest.StatusExited })
	requireNothingOfOurs(t)

	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "ready", 2, wait)
	ecuBothWays(t, host, 0x302, 2)
	k.Remove(t, c.Name)
	requireNothingOfOurs(t)
}

// awaitRuns waits until the container's task has exited n times (n runs,
// containerd's /tasks/exit events) and each run's task and container were
// deleted (/containers/delete: runc delete ran the poststop hooks).
func awaitRuns(t *testing.T, k *kantotest.Kanto, id string, n int) {
	t.Helper()
	k.Containerd.AwaitEvents(t, wait, func() bool {
		return len(k.Containerd.ExitStatuses(kantotest.Namespace, id)) == n &&
			k.Containerd.ContainerDeletes(kantotest.Namespace, id) == n
	})
}

// requireOneAttachment: the container has exactly one attachment, named,
// with one rule per frame kind each way (classic and FD: 4): nothing
// duplicated.
func requireOneAttachment(t *testing.T, c kantotest.Container) {
	t.Helper()
	mine := attachmentsOf(t, c.ID)
	if len(mine) != 1 || len(mine[0].Rules) != 4 || mine[0].Name != c.Name {
		t.Fatalf("want one attachment with 4 rules (classic and FD each way), got %+v", mine)
	}
}

// Kanto's deployment directory: a container JSON there (with the hooks) is
// created and started when container-management starts; the container
// talks with the emulated ECU both ways.
func TestRealKantoDeploymentDirectory(t *testing.T) {
	bus, ecuIf := kerneltest.Kvaser(t)
	dir := t.TempDir()
	m := appManifest("deployed-app", serve, []string{"KANTO_CAN=" + bus}, true)
	m["container_id"] = "deployed-app-id"
	writeJSON(t, filepath.Join(dir, "deployed-app.json"), m)
	k := realKanto(t, kantotest.WithDeployment(dir))
	ecu := kerneltest.Open(t, nil, ecuIf)
	k.WaitLog(t, "deployed-app-id", "ready", 1, wait)
	ecuBothWays(t, ecu, 0x220, 7)
	if mine := attachmentsOf(t, "deployed-app-id"); len(mine) != 1 || mine[0].Name != "deployed-app" {
		t.Errorf("ls: %+v", mine)
	}
	k.Remove(t, "deployed-app")
	requireNothingOfOurs(t)
}

// kanto-can's daemon with its defaults follows the real Kanto's containers
// (containerd at /run/containerd/containerd.sock, namespace kanto-cm): its
// metrics name each container by its Kanto name; and a container that
// Kanto removes while its restart policy cycles it leaves nothing behind,
// whatever Kanto does with its last task.
func TestRealKantoDaemon(t *testing.T) {
	kerneltest.VCAN(t, "kdaemon", 16)
	k := realKanto(t)
	d := kerneltest.StartDaemon(t, wait, "--metrics-address=127.0.0.1:9741")
	c := k.CreateJSON(t, appManifest("metrics-app", sleeper, []string{"KANTO_CAN=kdaemon"}, true))
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "up", 1, wait)
	m := kerneltest.Scrape(t, "http://127.0.0.1:9741/metrics")
	if _, ok := m.Value("kanto_can_frames_total", map[string]string{"container": c.ID, "name": c.Name, "bus": "kdaemon", "direction": "rx", "result": "handled"}); !ok {
		t.Errorf("metrics: no kanto_can_frames_total for container %s named %s", c.ID, c.Name)
	}
	k.Remove(t, c.Name)
	requireNothingOfOurs(t)

	cycling := k.CreateJSON(t, withRestartPolicy(appManifest("cycling-app", []string{"/bin/sh", "-c", "/bin/canapp check kdaemon && exit 1"},
		[]string{"KANTO_CAN=kdaemon"}, true), map[string]any{"type": "always"}))
	k.Start(t, cycling.Name)
	k.Containerd.AwaitEvents(t, wait, func() bool { return len(k.Containerd.ExitStatuses(kantotest.Namespace, cycling.ID)) >= 2 })
	k.MustCM(t, "remove", "-f", "-n", cycling.Name)
	// The poststop hook or, where Kanto left the task, the daemon: each
	// reconcile is a chance; the bound is the test's wait.
	deadline := time.Now().Add(wait)
	for left := oursLeft(t); left != ""; left = oursLeft(t) {
		if time.Now().After(deadline) {
			t.Fatalf("after kanto-cm remove of a cycling container: left %s", left)
		}
		d.AwaitLog(t, "msg=reconciled")
	}
}
