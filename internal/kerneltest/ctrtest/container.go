package ctrtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// Hook is an OCI hook as Kanto copies it from a container manifest into the
// spec. runc runs it with exactly Env (no PATH unless given) and Args (Args[0]
// is argv[0]); it gets the container's OCI state JSON on stdin.
type Hook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout *int     `json:"timeout,omitempty"` // seconds
}

// Hooks are the OCI hooks of a container. Prestart and CreateRuntime run in
// `runc create` (the container's namespaces exist, the entrypoint has not
// started: a failure fails the start), Poststart in `runc start`, Poststop in
// `runc delete`. Kanto manifests only have prestart, poststart and poststop.
type Hooks struct {
	Prestart      []Hook `json:"prestart,omitempty"`
	CreateRuntime []Hook `json:"createRuntime,omitempty"`
	Poststart     []Hook `json:"poststart,omitempty"`
	Poststop      []Hook `json:"poststop,omitempty"`
}

func (h Hooks) empty() bool {
	return len(h.Prestart)+len(h.CreateRuntime)+len(h.Poststart)+len(h.Poststop) == 0
}

// Spec is what a test chooses of a container; the rest is containerd's
// default spec, as for a Kanto container.
type Spec struct {
	Image string   // reference of an image in the container's namespace
	Args  []string // the process; empty: the image's entrypoint and command
	Env   []string // KEY=VALUE added to (or replacing in) the image's env
	Hooks Hooks
	// HostNetwork shares the host's network namespace (Kanto's network_mode
	// "host"); otherwise runc creates a new one (network_mode "bridge").
	HostNetwork bool
	// NetNS joins an existing network namespace (a path such as
	// /run/netns/NAME) instead of making one: like Kanto's bridge network,
	// whose sandbox keeps the namespace alive beyond the container.
	NetNS string
}

// Container is a container started by [Containerd.Run]. Its task runs
// detached; its stdout and stderr go to a file ([Container.Output]).
type Container struct {
	c       *Containerd
	ns, id  string
	dir     string // our files: config.json, output.log, rootfs/
	rootfs  string
	logPath string
	pid     int
	stopped bool
}

// Run creates and starts a container the way Kanto does (containerd
// NewContainer, NewTask = runc create, task Start = runc start) and returns
// once the entrypoint runs. It fails the test if the start fails; see
// [Containerd.RunErr] for starts that must fail. tb.Cleanup stops the
// container if the test did not.
func (c *Containerd) Run(tb testing.TB, ns, id string, spec Spec) *Container {
	tb.Helper()
	ct, stderr, err := c.start(tb, ns, id, spec)
	if err != nil {
		tb.Fatalf("start container %s/%s: %v\n%s", ns, id, err, stderr)
	}
	return ct
}

// Start is [Containerd.Run] for starts made from several goroutines at
// once: a failed start is returned rather than failing the test.
func (c *Containerd) Start(tb testing.TB, ns, id string, spec Spec) (*Container, error) {
	tb.Helper()
	ct, stderr, err := c.start(tb, ns, id, spec)
	if err != nil {
		return nil, fmt.Errorf("start container %s/%s: %w\n%s", ns, id, err, stderr)
	}
	return ct, nil
}

// RunErr starts a container that is expected not to start (a failing
// prestart hook, say) and returns ctr's error output, which carries
// containerd's error text (runc's, with the hook's stderr). The container
// and its snapshot are removed again, as Kanto does after a failed start. If
// the container did start, RunErr stops it and returns a nil error.
func (c *Containerd) RunErr(tb testing.TB, ns, id string, spec Spec) (stderr string, err error) {
	tb.Helper()
	ct, stderr, err := c.start(tb, ns, id, spec)
	if err == nil {
		ct.Stop(tb)
	}
	return stderr, err
}

func (c *Containerd) start(tb testing.TB, ns, id string, spec Spec) (*Container, string, error) {
	tb.Helper()
	img := c.image(tb, ns, spec.Image)
	// Our files live in a directory named after a hash: ids are arbitrary.
	dir := filepath.Join(c.dir, "containers", sha256hex([]byte(ns + "\x00" + id))[:16])
	ct := &Container{
		c: c, ns: ns, id: id, dir: dir,
		rootfs:  filepath.Join(dir, "rootfs"),
		logPath: filepath.Join(dir, "output.log"),
	}
	if err := os.MkdirAll(ct.rootfs, 0o755); err != nil {
		tb.Fatalf("container dir: %v", err)
	}
	c.mu.Lock()
	c.cgroups[ns] = true
	c.mu.Unlock()

	// The image's root file system: a new active snapshot on the image's top
	// layer (what containerd's WithNewSnapshot makes), mounted by us because
	// ctr cannot give a spec file and an image together.
	out := c.mustCtr(tb, "-n", ns, "snapshots", "prepare", "--mounts", id, img.chainID)
	if err := mountSnapshot(out, ct.rootfs); err != nil {
		c.Ctr(tb, "-n", ns, "snapshots", "rm", id)
		tb.Fatalf("mount snapshot of %s for %s/%s: %v", spec.Image, ns, id, err)
	}

	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, c.ociSpec(tb, ns, id, ct.rootfs, img, spec), 0o644); err != nil {
		tb.Fatalf("spec: %v", err)
	}
	c.events.forget(ns, id)
	_, stderr, code := c.Ctr(tb, "-n", ns, "run", "--detach",
		"--config", cfg,
		"--log-uri", "file://"+ct.logPath,
		"--runc-root", filepath.Join(c.state, "runc"),
		id)
	if code != 0 {
		// Kanto deletes what a failed start left: here the container
		// record (and the task, if runc create got that far).
		c.Ctr(tb, "-n", ns, "tasks", "delete", "--force", id)
		c.Ctr(tb, "-n", ns, "containers", "delete", id)
		ct.removeRootfs(tb)
		return nil, stderr, fmt.Errorf("ctr run exit %d: %s", code, strings.TrimSpace(stderr))
	}
	tb.Cleanup(func() {
		if !ct.stopped {
			ct.Stop(tb)
		}
	})
	b, err := os.ReadFile(filepath.Join(c.TaskDir(ns, id), "init.pid"))
	if err == nil {
		ct.pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err != nil {
		tb.Fatalf("pid of %s/%s: %v", ns, id, err)
	}
	return ct, stderr, nil
}

// ociSpec is containerd's default spec (`ctr oci spec`, what
// containerd.WithNewSpec starts from) with the image's config, the test's
// process and hooks, and the snapshot as root.
func (c *Containerd) ociSpec(tb testing.TB, ns, id, rootfs string, img *imageInfo, spec Spec) []byte {
	tb.Helper()
	c.mu.Lock()
	def := c.defaultSpec
	c.mu.Unlock()
	if def == nil {
		def = []byte(c.mustCtr(tb, "oci", "spec"))
		c.mu.Lock()
		c.defaultSpec = def
		c.mu.Unlock()
	}
	var s map[string]any
	if err := json.Unmarshal(def, &s); err != nil {
		tb.Fatalf("ctr oci spec: %v", err)
	}
	proc, _ := s["process"].(map[string]any)
	linux, _ := s["linux"].(map[string]any)
	if proc == nil || linux == nil {
		tb.Fatalf("ctr oci spec: no process or linux section")
	}

	args := spec.Args
	if len(args) == 0 {
		args = append(append([]string(nil), img.config.Entrypoint...), img.config.Cmd...)
	}
	if len(args) == 0 {
		tb.Fatalf("container %s/%s: no Args and image %s has no entrypoint or command", ns, id, spec.Image)
	}
	proc["args"] = args
	env := img.config.Env
	if len(env) == 0 {
		env = []string{imagePath}
	}
	proc["env"] = mergeEnv(env, spec.Env)
	if img.config.WorkingDir != "" {
		proc["cwd"] = img.config.WorkingDir
	}
	s["root"] = map[string]any{"path": rootfs}
	// containerd's cgroup for a container: /<namespace>/<id>.
	linux["cgroupsPath"] = "/" + ns + "/" + id
	if spec.HostNetwork {
		var keep []any
		nss, _ := linux["namespaces"].([]any)
		for _, n := range nss {
			if m, _ := n.(map[string]any); m["type"] != "network" {
				keep = append(keep, n)
			}
		}
		linux["namespaces"] = keep
	}
	if spec.NetNS != "" {
		nss, _ := linux["namespaces"].([]any)
		for _, n := range nss {
			if m, _ := n.(map[string]any); m["type"] == "network" {
				m["path"] = spec.NetNS
			}
		}
	}
	if !spec.Hooks.empty() {
		s["hooks"] = spec.Hooks
	}
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		tb.Fatalf("spec: %v", err)
	}
	return b
}

// mergeEnv replaces or appends the KEY=VALUE entries of add.
func mergeEnv(base, add []string) []string {
	out := append([]string(nil), base...)
next:
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		for i, old := range out {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				out[i] = kv
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// mountSnapshot mounts what `ctr snapshots prepare --mounts` printed (a JSON
// list: an overlay, or a bind mount for native) at target.
func mountSnapshot(out, target string) error {
	var mounts []struct {
		Type    string
		Source  string
		Options []string
	}
	if err := json.Unmarshal([]byte(out), &mounts); err != nil {
		return fmt.Errorf("snapshot mounts %q: %v", out, err)
	}
	if len(mounts) != 1 {
		return fmt.Errorf("snapshot mounts %q: want one mount", out)
	}
	m := mounts[0]
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "rw":
		case "bind":
			flags |= unix.MS_BIND
		case "rbind":
			flags |= unix.MS_BIND | unix.MS_REC
		default:
			data = append(data, o)
		}
	}
	typ := m.Type
	if typ == "bind" || flags&unix.MS_BIND != 0 {
		typ = ""
	}
	if err := unix.Mount(m.Source, target, typ, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount -t %s %s %s -o %s: %v", m.Type, m.Source, target, strings.Join(m.Options, ","), err)
	}
	return nil
}

// ID and Namespace name the container in containerd.
func (ct *Container) ID() string        { return ct.id }
func (ct *Container) Namespace() string { return ct.ns }

// Pid is the container's init process (the entrypoint) in the test's PID
// namespace: /proc/<pid>/ns/net is the container's network namespace.
func (ct *Container) Pid() int { return ct.pid }

// Bundle is the task's bundle directory (config.json, init.pid), as a hook
// sees it in the OCI state's "bundle".
func (ct *Container) Bundle() string { return ct.c.TaskDir(ct.ns, ct.id) }

// Output is what the container printed so far, stdout and stderr together.
// The shim copies it asynchronously: it is complete after [Container.Stop];
// use [Container.WaitOutput] to await a line of a running container.
func (ct *Container) Output() string {
	b, _ := os.ReadFile(ct.logPath)
	return string(b)
}

// WaitOutput waits until the container's output contains substr and returns
// the output. It sleeps on inotify events of the output file, bounded by
// timeout.
func (ct *Container) WaitOutput(tb testing.TB, substr string, timeout time.Duration) string {
	tb.Helper()
	var out string
	err := kerneltest.AwaitFiles(timeout, nil, func(add func(string, uint32)) {
		add(ct.logPath, unix.IN_MODIFY)
	}, func() bool {
		out = ct.Output()
		return strings.Contains(out, substr)
	})
	if err != nil {
		tb.Fatalf("container %s/%s: no %q in its output: %v; output:\n%s", ct.ns, ct.id, substr, err, out)
	}
	return out
}

// Wait waits for the container's task to exit (containerd's /tasks/exit
// event) and returns its exit status. It does not delete anything: call
// [Container.Stop] for that.
func (ct *Container) Wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	ev := ct.c.events
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		code, ok, ch := ev.exit(ct.ns, ct.id)
		if ok {
			return code
		}
		select {
		case <-ch:
		case <-ev.done:
			tb.Fatalf("container %s/%s: ctr events ended before the task exited", ct.ns, ct.id)
		case <-timer.C:
			tb.Fatalf("container %s/%s: task did not exit within %v; output:\n%s\nrecent events:\n%s",
				ct.ns, ct.id, timeout, ct.Output(), ev.recent())
		}
	}
}

// Stop does what Kanto does on every stop: kill the task and wait for its
// exit, delete the task (runc delete: poststop hooks run) and the container,
// and remove its snapshot. A task that already exited is only deleted.
// Errors are reported with tb.Errorf (Stop also runs at cleanup).
func (ct *Container) Stop(tb testing.TB) {
	tb.Helper()
	if ct.stopped {
		return
	}
	ct.stopped = true
	c := ct.c
	// --force: SIGKILL unless it exited, wait for the exit, then delete.
	if out, errs, code := c.Ctr(tb, "-n", ct.ns, "tasks", "delete", "--force", ct.id); code != 0 {
		tb.Errorf("delete task %s/%s: exit %d: %s%s", ct.ns, ct.id, code, out, errs)
	}
	if out, errs, code := c.Ctr(tb, "-n", ct.ns, "containers", "delete", ct.id); code != 0 {
		tb.Errorf("delete container %s/%s: exit %d: %s%s", ct.ns, ct.id, code, out, errs)
	}
	ct.removeRootfs(tb)
}

// removeRootfs unmounts the snapshot and removes it.
func (ct *Container) removeRootfs(tb testing.TB) {
	tb.Helper()
	if err := unix.Unmount(ct.rootfs, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
		tb.Errorf("unmount %s: %v", ct.rootfs, err)
	}
	if out, errs, code := ct.c.Ctr(tb, "-n", ct.ns, "snapshots", "rm", ct.id); code != 0 {
		tb.Errorf("remove snapshot %s/%s: exit %d: %s%s", ct.ns, ct.id, code, out, errs)
	}
}
