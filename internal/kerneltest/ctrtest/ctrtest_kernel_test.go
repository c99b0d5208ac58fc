//go:build kernel

package ctrtest_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"golang.org/x/sys/unix"
)

const (
	ns       = "kanto-cm" // Kanto's containerd namespace
	imageRef = "docker.io/kanto-can/ctrtest:1"
	// Bounds only: the guest emulates its CPU, a container start takes seconds.
	waitFor = 60 * time.Second
)

func image(t *testing.T, c *ctrtest.Containerd) {
	t.Helper()
	start := time.Now()
	ctrtest.BuildImage(t, c, ns, imageRef, map[string]string{
		"/bin/busybox": "/bin/busybox",
		"/bin/canapp":  ctrtest.CanappPath(t),
	})
	t.Logf("timing: build and import image: %v", time.Since(start).Round(time.Millisecond))
}

// sh is an OCI hook running a shell command. runc gives hooks no PATH: every
// command is named by its absolute path.
func sh(script string) ctrtest.Hook {
	return ctrtest.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script}}
}

func TestContainerd(t *testing.T) {
	start := time.Now()
	c := ctrtest.StartContainerd(t)
	t.Logf("timing: containerd start (%s snapshotter): %v", c.Snapshotter(), time.Since(start).Round(time.Millisecond))
	image(t, c)

	t.Run("ExitCodeAndOutput", func(t *testing.T) {
		start := time.Now()
		ct := c.Run(t, ns, "exit-code", ctrtest.Spec{
			Image: imageRef,
			Args:  []string{"/bin/canapp", "check", "can0"},
		})
		run := time.Since(start)
		if code := ct.Wait(t, waitFor); code != 3 {
			t.Errorf("canapp check can0 in a fresh container: exit %d, want 3 (no such interface)", code)
		}
		ct.Stop(t)
		t.Logf("timing: container run %v, run+wait+stop %v", run.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if out := ct.Output(); !strings.Contains(out, "canapp: no interface can0") {
			t.Errorf("output %q lacks canapp's message", out)
		}
		// Kanto deletes task and container on every stop.
		if out, _, _ := c.Ctr(t, "-n", ns, "containers", "ls", "-q"); strings.Contains(out, "exit-code") {
			t.Errorf("container still listed after Stop: %q", out)
		}
	})

	t.Run("HooksNetnsCaps", func(t *testing.T) {
		dir := t.TempDir()
		pre, post := filepath.Join(dir, "prestart"), filepath.Join(dir, "poststop")
		// The prestart hook adds a vcan interface to the container's network
		// namespace (the pid is in the OCI state on stdin): the entrypoint
		// finds it only if the hook ran before it.
		prestart := sh(`state=$(/bin/busybox cat)
pid=$(echo "$state" | /bin/busybox sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
/usr/bin/nsenter --net=/proc/$pid/ns/net /usr/sbin/ip link add hk0 type vcan || exit 1
echo "hookran $pid" >` + pre)
		poststop := sh(`/bin/busybox cat >` + post)
		ct := c.Run(t, ns, "hooks-1.ok", ctrtest.Spec{
			Image: imageRef,
			Args: []string{"/bin/sh", "-c",
				"/bin/canapp check lo && /bin/canapp check hk0 && echo hello-from-container && exec sleep 600"},
			Env:   []string{"KANTO_CAN=1"},
			Hooks: ctrtest.Hooks{Prestart: []ctrtest.Hook{prestart}, Poststop: []ctrtest.Hook{poststop}},
		})
		out := ct.WaitOutput(t, "hello-from-container", waitFor)
		if !strings.Contains(out, "interface hk0 present") {
			t.Errorf("output %q: the prestart hook's interface was not there", out)
		}
		b, err := os.ReadFile(pre)
		if err != nil || !strings.HasPrefix(string(b), "hookran ") {
			t.Errorf("prestart marker: %q, %v", b, err)
		}

		pid := ct.Pid()
		host, _ := os.Readlink("/proc/self/ns/net")
		cns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
		if err != nil || cns == host {
			t.Errorf("container netns %q (%v), host %q: want a private one", cns, err, host)
		}
		if capEff(t, pid)&(1<<12) != 0 {
			t.Errorf("container has CAP_NET_ADMIN")
		}
		// The bundle's spec is what runc got: a network namespace to create
		// (no path), our env, and not privileged (no CAP_SYS_ADMIN).
		var spec struct {
			Process struct {
				Env          []string
				Capabilities struct{ Effective []string }
			}
			Linux struct{ Namespaces []struct{ Type, Path string } }
		}
		b, err = os.ReadFile(filepath.Join(ct.Bundle(), "config.json"))
		if err != nil || json.Unmarshal(b, &spec) != nil {
			t.Fatalf("bundle config.json: %v", err)
		}
		netns := false
		for _, n := range spec.Linux.Namespaces {
			netns = netns || n.Type == "network" && n.Path == ""
		}
		if !netns {
			t.Errorf("spec namespaces %+v: no network namespace for runc to create", spec.Linux.Namespaces)
		}
		if caps := strings.Join(spec.Process.Capabilities.Effective, ","); strings.Contains(caps, "CAP_NET_ADMIN") ||
			strings.Contains(caps, "CAP_SYS_ADMIN") {
			t.Errorf("spec capabilities %s: want containerd's default set", caps)
		}
		if !strings.Contains(strings.Join(spec.Process.Env, " "), "KANTO_CAN=1") {
			t.Errorf("spec env %v lacks KANTO_CAN=1", spec.Process.Env)
		}

		ct.Stop(t)
		b, err = os.ReadFile(post)
		if err != nil || !strings.Contains(string(b), `"hooks-1.ok"`) {
			t.Errorf("poststop hook: state %q, %v", b, err)
		}
	})

	t.Run("FailingPrestart", func(t *testing.T) {
		start := time.Now()
		stderr, err := c.RunErr(t, ns, "fails", ctrtest.Spec{
			Image: imageRef,
			Args:  []string{"/bin/canapp", "check", "lo"},
			Hooks: ctrtest.Hooks{Prestart: []ctrtest.Hook{sh(`echo "kanto-can: no CAN bus for you" >&2; exit 1`)}},
		})
		t.Logf("timing: failed start: %v", time.Since(start).Round(time.Millisecond))
		if err == nil {
			t.Fatal("start with a failing prestart hook succeeded")
		}
		t.Logf("error text: %s", strings.TrimSpace(stderr))
		if !strings.Contains(stderr, "kanto-can: no CAN bus for you") {
			t.Errorf("the hook's message is not in the error: %q", stderr)
		}
		if out, _, _ := c.Ctr(t, "-n", ns, "containers", "ls", "-q"); strings.Contains(out, "fails") {
			t.Errorf("failed container still listed: %q", out)
		}
	})

	t.Run("CanappServe", func(t *testing.T) {
		// A vcan in the container's netns (as the kanto-can hook would add a
		// vxcan end), canapp serve as the entrypoint, frames both ways.
		prestart := sh(`pid=$(/bin/busybox sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
/usr/bin/nsenter --net=/proc/$pid/ns/net /bin/sh -c '/usr/sbin/ip link add can0 type vcan && /usr/sbin/ip link set can0 up'`)
		ct := c.Run(t, ns, "serve", ctrtest.Spec{
			Image: imageRef,
			Args:  []string{"/bin/canapp", "serve", "can0"},
			Hooks: ctrtest.Hooks{Prestart: []ctrtest.Hook{prestart}},
		})
		netns := "/proc/" + strconv.Itoa(ct.Pid()) + "/ns/net"
		ct.WaitOutput(t, "ready", waitFor)
		fd := canSocketIn(t, netns, "can0")
		if _, err := unix.Write(fd, classicFrame(0x123, 0x11, 0x22)); err != nil {
			t.Fatal(err)
		}
		if got := recvFrames(t, fd, 1); got[0] != "124#1122" {
			t.Errorf("echo of 123#1122: %s, want 124#1122", got[0])
		}
		// canapp send (the host's copy, in the container's netns): our
		// socket sees each frame and its echo.
		kerneltest.MustRun(t, "nsenter", "--net="+netns, ctrtest.CanappPath(t), "send", "can0", "200#AA,12345678##1BBCC")
		got := recvFrames(t, fd, 4)
		sort.Strings(got)
		if want := "12345678##1BBCC 12345679##1BBCC 200#AA 201#AA"; strings.Join(got, " ") != want {
			t.Errorf("frames %v, want %s", got, want)
		}
		// recv on a quiet bus: exit 4 after its timeout.
		if _, errs, code := kerneltest.Run(t, "nsenter", "--net="+netns, ctrtest.CanappPath(t), "recv", "can0", "1", "1"); code != 4 {
			t.Errorf("canapp recv on a quiet bus: exit %d (%s), want 4", code, errs)
		}
		ct.Stop(t)
	})

	t.Run("HostNetwork", func(t *testing.T) {
		ct := c.Run(t, ns, "host-net", ctrtest.Spec{
			Image:       imageRef,
			Args:        []string{"/bin/sh", "-c", "echo up && exec sleep 600"},
			HostNetwork: true,
		})
		ct.WaitOutput(t, "up", waitFor)
		host, _ := os.Readlink("/proc/self/ns/net")
		cns, _ := os.Readlink("/proc/" + strconv.Itoa(ct.Pid()) + "/ns/net")
		if cns != host {
			t.Errorf("host-network container in netns %q, host %q", cns, host)
		}
		ct.Stop(t)
	})
}

// TestRuncWrapper: a "runc" first in containerd's PATH is the runc the shim
// runs, as a wrapper in /usr/local/sbin on a device.
func TestRuncWrapper(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runc-calls")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\necho \"$*\" >>" + log + "\nexec /usr/sbin/runc \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "runc"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	c := ctrtest.StartContainerd(t, ctrtest.WithPath(bin))
	image(t, c)
	ct := c.Run(t, ns, "wrapped", ctrtest.Spec{Image: imageRef, Args: []string{"/bin/canapp", "check", "lo"}})
	if code := ct.Wait(t, waitFor); code != 0 {
		t.Errorf("exit %d, output %q", code, ct.Output())
	}
	ct.Stop(t)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("the wrapper was not run: %v", err)
	}
	calls := string(b)
	t.Logf("runc calls through the wrapper:\n%s", calls)
	for _, want := range []string{"create", "start", "delete"} {
		found := false
		for _, line := range strings.Split(calls, "\n") {
			f := strings.Fields(line)
			found = found || len(f) > 0 && f[len(f)-1] == "wrapped" && strings.Contains(" "+line+" ", " "+want+" ")
		}
		if !found {
			t.Errorf("no 'runc %s ... wrapped' through the wrapper", want)
		}
	}
	if !strings.Contains(calls, "--root "+c.RuncRoot(ns)) {
		t.Errorf("runc not run with --root %s", c.RuncRoot(ns))
	}
}

// canSocketIn opens a raw CAN socket (FD frames on) bound to iface in the
// network namespace netns; the socket stays there.
func canSocketIn(t *testing.T, netns, iface string) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(self)
	target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			panic(err) // the thread would stay in the wrong namespace
		}
	}()
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, 5 /* CAN_RAW_FD_FRAMES */, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	return fd
}

func classicFrame(id uint32, data ...byte) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b, id)
	b[4] = byte(len(data))
	copy(b[8:], data)
	return b
}

// recvFrames reads n frames, formatted like canapp (123#11, 12345678##1AA).
func recvFrames(t *testing.T, fd, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	var out []string
	buf := make([]byte, 72)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %v, want %d frames", out, n)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if k, err := unix.Poll(pfd, int(left/time.Millisecond)+1); k == 0 || err != nil {
			continue
		}
		m, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		id := binary.NativeEndian.Uint32(buf)
		var s string
		if id&unix.CAN_EFF_FLAG != 0 {
			s = fmt.Sprintf("%08X", id&unix.CAN_EFF_MASK)
		} else {
			s = fmt.Sprintf("%03X", id&unix.CAN_SFF_MASK)
		}
		if m == 72 {
			s += fmt.Sprintf("##%X%X", buf[5]&3, buf[8:8+int(buf[4])])
		} else {
			s += fmt.Sprintf("#%X", buf[8:8+int(buf[4])])
		}
		out = append(out, s)
	}
	return out
}

// capEff returns a process's effective capability set.
func capEff(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("pid %d has no capabilities at all: parse error?", pid)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in /proc/%d/status", pid)
	return 0
}
