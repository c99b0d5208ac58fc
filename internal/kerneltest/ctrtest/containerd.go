// Package ctrtest runs real containers in kernel tests, the way Eclipse Kanto
// container-management runs them: containerd 1.6 and runc from the host's
// Debian packages, driven through the ctr CLI (no containerd Go client, to
// keep the dependency set small).
//
// Like package kerneltest, it is for tests built with the "kernel" build tag,
// which run only inside the QEMU guest of test/vm/run.sh: every entry point
// calls [kerneltest.Require].
//
//	c := ctrtest.StartContainerd(t)                      // private daemon
//	ctrtest.BuildImage(t, c, "kanto-cm", "docker.io/test/app:1", map[string]string{
//		"/bin/busybox": "/bin/busybox",                   // plus sh, ls, ... symlinks
//		"/bin/canapp":  ctrtest.CanappPath(t),
//	})
//	ctr := c.Run(t, "kanto-cm", "app", ctrtest.Spec{
//		Image: "docker.io/test/app:1",
//		Args:  []string{"/bin/canapp", "check", "can0"},
//		Hooks: ctrtest.Hooks{Prestart: []ctrtest.Hook{{Path: hook, Args: []string{hook, "attach"}}}},
//	})
//	code := ctr.Wait(t, 30*time.Second)
//	ctr.Stop(t)                                           // task and container deleted
//
// What matches Kanto: namespace and container id are the caller's; the OCI
// spec is containerd's default (not privileged, default capabilities without
// CAP_NET_ADMIN, a network namespace created by runc) with the image's
// config, the caller's process and hooks; NewContainer and NewTask (runc
// create: prestart hooks) then task start (runc start: poststart hooks); the
// task is deleted (runc delete: poststop hooks) and the container too on every
// stop; runc is found by name through containerd's PATH ([WithPath]).
//
// What differs: the container's root file system is a snapshot of the image
// that ctrtest prepares and mounts itself (ctr cannot combine a spec file with
// an image), so the bundle's config.json has an absolute root.path instead of
// "rootfs"; and runc keeps its state under the daemon's state directory
// ([Containerd.RuncRoot]) instead of /run/containerd/runc.
package ctrtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH of containerd's systemd unit: what containerd, its
// shims and so runc lookup see, after the directories of [WithPath].
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Bounds of the waits. The guest emulates its CPU (no KVM): generous.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Containerd is a containerd daemon private to one test: its own config,
// socket, root and state directories under a temporary directory.
type Containerd struct {
	dir, root, state, addr string
	device                 bool // root and state are the device's, outside dir
	snapshotter            string
	logPath                string
	cmd                    *exec.Cmd
	exited                 chan struct{} // closed when the daemon exited

	events *events

	mu          sync.Mutex
	defaultSpec []byte                // `ctr oci spec`, once
	images      map[string]*imageInfo // ns + "\x00" + ref
	cgroups     map[string]bool       // namespaces whose cgroup parent to remove
}

type options struct {
	path        []string
	snapshotter string
	device      bool
	cri         *CRI
}

// CRI configures containerd's CRI plugin, as kubelet's containerd has it.
type CRI struct {
	// SandboxImage is the pod sandbox's image, imported into namespace
	// k8s.io before the first RunPodSandbox; its command must keep running.
	SandboxImage string
	// BinDir and ConfDir are CNI's plugin and config directories.
	BinDir, ConfDir string
}

// WithCRI turns containerd's CRI plugin on (off by default: Kanto does
// not use it), serving on the daemon's socket.
func WithCRI(cri CRI) Option {
	return func(o *options) { o.cri = &cri }
}

// Option configures [StartContainerd].
type Option func(*options)

// WithPath puts dirs before [DefaultPath] in containerd's PATH, which its
// shims inherit: a wrapper installed as "runc" in one of them is the runc
// every container is created, started and deleted with (as /usr/local/sbin
// comes before /usr/sbin in containerd's systemd unit).
func WithPath(dirs ...string) Option {
	return func(o *options) { o.path = append(o.path, dirs...) }
}

// WithSnapshotter selects containerd's snapshotter: "overlayfs" (the default,
// as on a Kanto device) or "native" (plain copies, works on any file system).
func WithSnapshotter(name string) Option {
	return func(o *options) { o.snapshotter = name }
}

// AtDevicePaths runs containerd with the paths of a device's containerd:
// socket /run/containerd/containerd.sock, state /run/containerd, root
// /var/lib/containerd. For tests of programs that find containerd there by
// default (Eclipse Kanto, kanto-can without flags). Only one such daemon
// runs at a time; the guest's /run and /var/lib start empty.
func AtDevicePaths() Option {
	return func(o *options) { o.device = true }
}

// StartContainerd starts a containerd daemon for the test and waits until it
// answers. tb.Cleanup stops it and unmounts what it left. Containers started
// with [Containerd.Run] are stopped before that.
func StartContainerd(tb testing.TB, opts ...Option) *Containerd {
	tb.Helper()
	kerneltest.Require(tb)
	o := options{snapshotter: "overlayfs"}
	for _, opt := range opts {
		opt(&o)
	}
	// A short directory of our own: the socket path must fit in sun_path
	// (108 bytes), which a long test name in tb.TempDir() could exceed.
	// /tmp is a tmpfs in the guest.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		tb.Fatalf("containerd dir: %v", err)
	}
	c := &Containerd{
		dir:         dir,
		root:        filepath.Join(dir, "root"),
		state:       filepath.Join(dir, "state"),
		addr:        filepath.Join(dir, "containerd.sock"),
		device:      o.device,
		snapshotter: o.snapshotter,
		logPath:     filepath.Join(dir, "containerd.log"),
		exited:      make(chan struct{}),
		images:      map[string]*imageInfo{},
		cgroups:     map[string]bool{},
	}
	if o.device {
		c.root, c.state = "/var/lib/containerd", "/run/containerd"
		c.addr = filepath.Join(c.state, "containerd.sock")
		if _, err := os.Stat(c.addr); err == nil {
			tb.Fatalf("containerd at the device's paths: %s exists (another containerd runs, or one was left)", c.addr)
		}
	}
	tb.Cleanup(func() { c.shutdown(tb) })
	if o.device {
		// The guest's root is an overlay, which cannot be the upper layer
		// of the overlayfs snapshotter's mounts: give the root a tmpfs, as
		// a device's /var/lib is a real file system. (Under /tmp, the
		// default directory already is one.)
		if err := os.MkdirAll(c.root, 0o711); err != nil {
			tb.Fatal(err)
		}
		if err := unix.Mount("tmpfs", c.root, "tmpfs", 0, "mode=0711"); err != nil {
			tb.Fatalf("tmpfs on %s: %v", c.root, err)
		}
	}

	// CRI off unless asked for: it wants CNI and a sandbox image, Kanto
	// does not use it. Snapshotters that cannot work here are disabled to
	// keep the log clean.
	criOff := `
  "io.containerd.grpc.v1.cri",`
	if o.cri != nil {
		criOff = ""
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [`+criOff+`
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, c.root, c.state, c.addr, filepath.Join(dir, "opt"))
	if o.cri != nil {
		config += fmt.Sprintf(`
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, o.cri.SandboxImage, o.snapshotter, o.cri.BinDir, o.cri.ConfDir)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		tb.Fatalf("containerd config: %v", err)
	}
	logf, err := os.Create(c.logPath)
	if err != nil {
		tb.Fatalf("containerd log: %v", err)
	}
	defer logf.Close()

	path := strings.Join(append(append([]string(nil), o.path...), DefaultPath), ":")
	c.cmd = exec.Command("containerd", "--config", cfg)
	c.cmd.Env = append(envWithout(os.Environ(), "PATH"), "PATH="+path)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// Its own process group: a signal to the test's group does not reach it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("start containerd: %v", err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()

	// Ready when ctr gets an answer. Each try blocks until it connects (up to
	// its connect timeout: the client waits for the socket to appear), so the
	// loop does not spin; it ends early if the daemon died.
	deadline := time.Now().Add(startTimeout)
	for {
		out, errs, code := c.Ctr(tb, "--connect-timeout", "5s", "version")
		if code == 0 && strings.Contains(out, "Server:") {
			break
		}
		select {
		case <-c.exited:
			tb.Fatalf("containerd exited during start-up: %v\n%s", c.cmd.ProcessState, c.Log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("containerd did not answer within %v: %s%s\n%s", startTimeout, out, errs, c.Log())
		}
	}
	c.events = c.subscribe(tb)
	return c
}

// Address is the daemon's gRPC socket, for ctr --address or CONTAINERD_ADDRESS.
func (c *Containerd) Address() string { return c.addr }

// Snapshotter is the snapshotter images are unpacked with.
func (c *Containerd) Snapshotter() string { return c.snapshotter }

// Root and State are the daemon's --root and --state directories.
func (c *Containerd) Root() string  { return c.root }
func (c *Containerd) State() string { return c.state }

// RuncRoot is runc's --root for the containers of namespace ns: where runc
// keeps its state (runc --root RuncRoot(ns) state ID). On a device this is
// /run/containerd/runc/<ns>.
func (c *Containerd) RuncRoot(ns string) string {
	return filepath.Join(c.state, "runc", ns)
}

// TaskDir is the task's bundle directory, which holds config.json (the OCI
// spec runc got) and init.pid: on a device
// /run/containerd/io.containerd.runtime.v2.task/<ns>/<id>.
func (c *Containerd) TaskDir(ns, id string) string {
	return filepath.Join(c.state, "io.containerd.runtime.v2.task", ns, id)
}

// Log returns what the daemon logged so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// Ctr runs ctr against this daemon: ctr --address <sock> args... A non-zero
// exit is a result, not a failure. Pass "-n", ns first for a namespace.
func (c *Containerd) Ctr(tb testing.TB, args ...string) (stdout, stderr string, exit int) {
	tb.Helper()
	cmd := exec.Command("ctr", append([]string{"--address", c.addr}, args...)...)
	// Images are unpacked and snapshots made with this daemon's snapshotter.
	cmd.Env = append(envWithout(os.Environ(), "CONTAINERD_SNAPSHOTTER", "CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE"),
		"CONTAINERD_SNAPSHOTTER="+c.snapshotter)
	return kerneltest.RunCmd(tb, cmd)
}

// mustCtr runs ctr and fails the test unless it exits 0; it returns stdout.
func (c *Containerd) mustCtr(tb testing.TB, args ...string) string {
	tb.Helper()
	out, errs, code := c.Ctr(tb, args...)
	if code != 0 {
		tb.Fatalf("ctr %s: exit %d: %s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// shutdown stops the event reader and the daemon (SIGTERM, then SIGKILL if it
// does not exit in time), unmounts what is left under its directory and
// removes it.
func (c *Containerd) shutdown(tb testing.TB) {
	if c.events != nil {
		c.events.stop()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			tb.Errorf("containerd ignored SIGTERM for %v: killed", stopTimeout)
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	if tb.Failed() {
		tb.Logf("containerd log:\n%s", c.Log())
	}
	dirs := []string{c.dir}
	if c.device {
		dirs = append(dirs, c.root, c.state)
	}
	for _, d := range dirs {
		UnmountUnder(tb, d)
		if err := os.RemoveAll(d); err != nil {
			tb.Errorf("remove %s: %v", d, err)
		}
	}
	// runc leaves the namespace's parent cgroup (/sys/fs/cgroup/<ns>): empty
	// once all its containers are deleted.
	c.mu.Lock()
	defer c.mu.Unlock()
	for ns := range c.cgroups {
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", ns))
	}
}

// UnmountUnder unmounts every mount point at or below dir, deepest first.
func UnmountUnder(tb testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Errorf("mountinfo: %v", err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			tb.Errorf("unmount %s: %v", p, err)
		}
	}
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func envWithout(env []string, keys ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, k := range keys {
			if strings.HasPrefix(kv, k+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// events follows `ctr events` and records task exits, so that waiting for a
// container's exit is waiting for containerd's /tasks/exit event, not polling.
type events struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when ctr events ended

	mu       sync.Mutex
	exits    map[string]int             // ns + "\x00" + id -> exit status
	statuses map[string][]int           // ns + "\x00" + id -> every exit status, in order
	deletes  map[string]int             // ns + "\x00" + id -> /containers/delete events
	notify   map[string][]chan struct{} // woken on a new exit or namespace
	changed  chan struct{}              // closed and replaced at every recorded event
	lines    []string                   // the last events, for error messages
}

type taskExit struct {
	ContainerID string `json:"container_id"`
	ID          string `json:"id"`
	ExitStatus  int    `json:"exit_status"` // omitted when 0
}

// subscribe starts `ctr events` and waits until it is subscribed: ctr says
// nothing when its subscription is in place, so we create a namespace (an
// event) and wait to see it; a namespace created before the subscription
// is not reported, so we try again with a new one.
func (c *Containerd) subscribe(tb testing.TB) *events {
	tb.Helper()
	e := &events{
		done:     make(chan struct{}),
		exits:    map[string]int{},
		statuses: map[string][]int{},
		deletes:  map[string]int{},
		notify:   map[string][]chan struct{}{},
		changed:  make(chan struct{}),
	}
	e.cmd = exec.Command("ctr", "--address", c.addr, "events")
	out, err := e.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("ctr events: %v", err)
	}
	e.cmd.Stderr = os.Stderr
	if err := e.cmd.Start(); err != nil {
		tb.Fatalf("ctr events: %v", err)
	}
	go e.read(out)

	deadline := time.Now().Add(startTimeout)
	for i := 0; ; i++ {
		name := fmt.Sprintf("ctrtest-sync-%d", i)
		ch := e.watch("ns\x00" + name)
		c.mustCtr(tb, "namespaces", "create", name)
		select {
		case <-ch:
		case <-e.done:
			tb.Fatalf("ctr events ended: %v", e.cmd.ProcessState)
		case <-time.After(2 * time.Second):
			if time.Now().After(deadline) {
				tb.Fatalf("ctr events reported nothing within %v", startTimeout)
			}
			continue
		}
		c.mustCtr(tb, "namespaces", "remove", name)
		return e
	}
}

// watch returns a channel closed at the next event for key.
func (e *events) watch(key string) <-chan struct{} {
	ch := make(chan struct{})
	e.mu.Lock()
	e.notify[key] = append(e.notify[key], ch)
	e.mu.Unlock()
	return ch
}

func (e *events) wake(key string) {
	for _, ch := range e.notify[key] {
		close(ch)
	}
	delete(e.notify, key)
}

// read parses lines "<timestamp (4 fields)> <namespace> <topic> <json>".
func (e *events) read(r interface{ Read([]byte) (int, error) }) {
	defer close(e.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		topic := -1
		for i, s := range f {
			if strings.HasPrefix(s, "/") {
				topic = i
				break
			}
		}
		if topic < 1 {
			continue
		}
		ns, body := f[topic-1], strings.Join(f[topic+1:], " ")
		e.mu.Lock()
		if e.lines = append(e.lines, line); len(e.lines) > 50 {
			e.lines = e.lines[1:]
		}
		switch f[topic] {
		case "/tasks/exit":
			var x taskExit
			if json.Unmarshal([]byte(body), &x) == nil && x.ID == x.ContainerID {
				key := ns + "\x00" + x.ContainerID
				e.exits[key] = x.ExitStatus
				e.statuses[key] = append(e.statuses[key], x.ExitStatus)
				e.wake(key)
			}
		case "/containers/delete":
			var x struct{ ID string }
			if json.Unmarshal([]byte(body), &x) == nil {
				e.deletes[ns+"\x00"+x.ID]++
			}
		case "/namespaces/create":
			var x struct{ Name string }
			if json.Unmarshal([]byte(body), &x) == nil {
				e.wake("ns\x00" + x.Name)
			}
		}
		e.changedNow()
		e.mu.Unlock()
	}
}

// exit returns the recorded exit status of a container's task, and a channel
// closed at its next exit event.
func (e *events) exit(ns, id string) (int, bool, <-chan struct{}) {
	key := ns + "\x00" + id
	e.mu.Lock()
	defer e.mu.Unlock()
	if code, ok := e.exits[key]; ok {
		return code, true, nil
	}
	ch := make(chan struct{})
	e.notify[key] = append(e.notify[key], ch)
	return 0, false, ch
}

// forget drops a recorded exit: the id is used again.
func (e *events) forget(ns, id string) {
	e.mu.Lock()
	delete(e.exits, ns+"\x00"+id)
	e.mu.Unlock()
}

// changedNow wakes every waiter on e.changed; e.mu is held.
func (e *events) changedNow() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// ExitStatuses returns the exit status of every run of container ns/id's
// task so far (containerd's /tasks/exit events), oldest first: a container
// restarted by its engine has one per run.
func (c *Containerd) ExitStatuses(ns, id string) []int {
	c.events.mu.Lock()
	defer c.events.mu.Unlock()
	return append([]int(nil), c.events.statuses[ns+"\x00"+id]...)
}

// ContainerDeletes returns how many /containers/delete events containerd
// sent for ns/id so far.
func (c *Containerd) ContainerDeletes(ns, id string) int {
	c.events.mu.Lock()
	defer c.events.mu.Unlock()
	return c.events.deletes[ns+"\x00"+id]
}

// AwaitEvents waits until ok, called after every event of containerd's
// (and once at first), returns true.
func (c *Containerd) AwaitEvents(tb testing.TB, timeout time.Duration, ok func() bool) {
	tb.Helper()
	if !c.WaitEvents(tb, timeout, ok) {
		tb.Fatalf("not as wanted after %v; recent events:\n%s", timeout, c.events.recent())
	}
}

// WaitEvents is AwaitEvents that reports a timeout (false) instead of
// failing the test.
func (c *Containerd) WaitEvents(tb testing.TB, timeout time.Duration, ok func() bool) bool {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.events.mu.Lock()
		changed := c.events.changed
		c.events.mu.Unlock()
		if ok() {
			return true
		}
		select {
		case <-changed:
		case <-c.events.done:
			tb.Fatalf("ctr events ended")
		case <-timer.C:
			return false
		}
	}
}

func (e *events) recent() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.lines, "\n")
}

func (e *events) stop() {
	if e.cmd.Process != nil {
		_ = e.cmd.Process.Kill()
	}
	<-e.done
	_ = e.cmd.Wait()
}
