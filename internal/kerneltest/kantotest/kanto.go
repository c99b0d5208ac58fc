// Package kantotest runs the real Eclipse Kanto container-management daemon
// and its CLI, kanto-cm, in kernel tests: containers are created, started,
// stopped and removed by Kanto itself, exactly as on a device.
//
// Like package kerneltest, it is for tests built with the "kernel" build tag,
// which run only inside the QEMU guest of test/vm/run.sh. The binaries are
// Kanto's own, built from its source; `make setup` unpacks and checks them
// into .cache/kanto/, and make passes that directory to the guest
// ($KANTO_CAN_KANTO).
//
//	k := kantotest.Start(t, kantotest.WithImage("docker.io/library/app:1", files))
//	c := k.Create(t, "manifest.json")                    // kanto-cm create -f
//	k.Start(t, c.Name)                                   // kanto-cm start -n NAME
//	k.WaitLog(t, c.ID, "ready", 1, time.Minute)          // the container's json.log
//	k.Remove(t, c.Name)                                  // kanto-cm remove -f -n NAME
//
// Everything runs at a device's paths, so that programs under test find
// Kanto and containerd where they would on Leda, without flags: containerd's
// socket /run/containerd/containerd.sock and state /run/containerd (see
// [ctrtest.AtDevicePaths]), Kanto's records under /var/lib/container-management
// and its socket /run/container-management/container-management.sock. Only
// one Kanto runs at a time; tb.Cleanup removes every container, stops both
// daemons and removes their directories and Kanto's bridge.
package kantotest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

// Where Kanto keeps things on a device (its defaults).
const (
	// Namespace is Kanto's containerd namespace.
	Namespace = "kanto-cm"
	// HomeDir is container-management's home (manager.home_dir).
	HomeDir = "/var/lib/container-management"
	// Socket is container-management's gRPC socket, which kanto-cm uses.
	Socket = "/run/container-management/container-management.sock"
	// Bridge is the bridge of Kanto's default network.
	Bridge = "kanto-cm0"
	// EnvDir names the directory with the container-management and
	// kanto-cm binaries, set by make for the guest.
	EnvDir = "KANTO_CAN_KANTO"
)

// Bounds of the waits: the guest emulates its CPU.
const (
	startTimeout = 90 * time.Second
	stopTimeout  = 60 * time.Second
)

// Kanto is a container-management daemon started by a test, on its own
// containerd.
type Kanto struct {
	// Containerd is the containerd Kanto drives, at the device's paths:
	// import images into [Namespace] with [ctrtest.BuildImage].
	Containerd *ctrtest.Containerd

	bin, cli   string // container-management, kanto-cm
	dir        string // config, log
	configPath string
	logPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
}

type options struct {
	path       []string
	deployment string
	images     []image
}

type image struct {
	ref   string
	files map[string]string
}

// Option configures [Start].
type Option func(*options)

// WithPath puts dirs first in containerd's PATH: a kanto-can linked as
// "runc" there is the runc Kanto's containers run with.
func WithPath(dirs ...string) Option {
	return func(o *options) { o.path = append(o.path, dirs...) }
}

// WithDeployment enables Kanto's deployment with container JSONs read from
// dir (deployment.ctr_dir) when the daemon starts.
func WithDeployment(dir string) Option {
	return func(o *options) { o.deployment = dir }
}

// WithImage imports an image into [Namespace] (see [ctrtest.BuildImage])
// before container-management starts, as if Kanto had pulled it: the
// containers of a deployment directory need their images at start.
func WithImage(ref string, files map[string]string) Option {
	return func(o *options) { o.images = append(o.images, image{ref, files}) }
}

// Binaries returns the paths of container-management and kanto-cm.
func Binaries(tb testing.TB) (daemon, cli string) {
	tb.Helper()
	kerneltest.Require(tb)
	dir := os.Getenv(EnvDir)
	if dir == "" {
		tb.Fatalf("%s is not set: make passes the directory of Kanto's binaries (.cache/kanto, made by make setup) to the guest", EnvDir)
	}
	daemon, cli = filepath.Join(dir, "container-management"), filepath.Join(dir, "kanto-cm")
	for _, p := range []string{daemon, cli} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			tb.Fatalf("Kanto binary %s: missing or not executable (run make setup): %v", p, err)
		}
	}
	return daemon, cli
}

// Start starts containerd at the device's paths (overlayfs, as Kanto uses)
// and container-management on it, and waits until kanto-cm gets answers.
func Start(tb testing.TB, opts ...Option) *Kanto {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, cli := Binaries(tb)
	// Kanto's default network: libnetwork's bridge kanto-cm0, veth pairs.
	kerneltest.RequireModules(tb, "bridge", "veth")
	for _, p := range []string{HomeDir, filepath.Dir(Socket)} {
		if _, err := os.Stat(p); err == nil {
			tb.Fatalf("%s exists: another Kanto runs, or one was left behind", p)
		}
	}
	ctrOpts := []ctrtest.Option{ctrtest.AtDevicePaths()}
	if len(o.path) > 0 {
		ctrOpts = append(ctrOpts, ctrtest.WithPath(o.path...))
	}
	c := ctrtest.StartContainerd(tb, ctrOpts...)
	for _, img := range o.images {
		ctrtest.BuildImage(tb, c, Namespace, img.ref, img.files)
	}
	dir, err := os.MkdirTemp("", "kanto-")
	if err != nil {
		tb.Fatal(err)
	}
	k := &Kanto{
		Containerd: c,
		bin:        bin,
		cli:        cli,
		dir:        dir,
		configPath: filepath.Join(dir, "config.json"),
		logPath:    filepath.Join(dir, "container-management.log"),
	}
	// Registered after containerd's: runs before it.
	tb.Cleanup(func() { k.shutdown(tb) })

	deployment := map[string]any{"enable": false}
	if o.deployment != "" {
		deployment = map[string]any{"enable": true, "ctr_dir": o.deployment}
	}
	config := map[string]any{
		"log": map[string]any{"log_file": k.logPath, "log_level": "DEBUG"},
		// The test entrypoints ignore SIGTERM (pid 1 without a handler):
		// do not wait 30 s for them when the daemon stops its containers
		// (the same bound applies to the wait after SIGKILL, which can take
		// a second or two under emulation).
		"manager": map[string]any{"default_ctrs_stop_timeout": "5s"},
		"containers": map[string]any{
			"default_ns":   Namespace,
			"address_path": c.Address(),
			// Images are imported by the tests: never expire or pull them.
			"image_expiry_disable": true,
		},
		// The guest has no iptables binary.
		"network":      map[string]any{"default_bridge": map[string]any{"ip_tables": false}},
		"things":       map[string]any{"enable": false},
		"update_agent": map[string]any{"enable": false},
		"deployment":   deployment,
	}
	b, err := json.Marshal(config)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(k.configPath, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	k.startDaemon(tb)
	return k
}

// startedLine is what container-management logs when its start-up is
// complete: its containers restored and restarted by their policies.
const startedLine = "successfully started Kanto CM daemon instance"

// startDaemon runs container-management and waits until its start-up is
// complete (its log says so) and kanto-cm list works. Its API answers
// before it has restored its containers: a signal sent then finds none to
// stop, and what a test sees of a container is not yet what Kanto will
// make of it.
func (k *Kanto) startDaemon(tb testing.TB) {
	tb.Helper()
	starts := k.starts()
	sockDir := filepath.Dir(Socket)
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	logf, err := os.OpenFile(k.logPath+".out", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	// --cfg-file must come first: container-management ignores it elsewhere.
	k.cmd = exec.Command(k.bin, "--cfg-file", k.configPath)
	k.cmd.Dir = k.dir
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	k.exited = make(chan struct{})
	if err := k.cmd.Start(); err != nil {
		tb.Fatalf("start container-management: %v", err)
	}
	exited := k.exited
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		close(exited)
	}(k.cmd)

	if err := awaitFile(Socket, startTimeout, exited); err != nil {
		tb.Fatalf("container-management: %v\n%s", err, k.Log())
	}
	if err := awaitInDir(k.dir, "its start-up to complete", startTimeout, exited, func() bool { return k.starts() > starts }); err != nil {
		tb.Fatalf("container-management: %v\n%s", err, k.Log())
	}
	deadline := time.Now().Add(startTimeout)
	for {
		out, errs, code := k.CM(tb, "list")
		if code == 0 {
			return
		}
		select {
		case <-exited:
			tb.Fatalf("container-management exited during start-up: %v\n%s", k.cmd.ProcessState, k.Log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kanto-cm list failed for %v: %s%s\n%s", startTimeout, out, errs, k.Log())
		}
		// The socket exists but the server is not serving yet: try again
		// after a pause (there is no event for "serving").
		time.Sleep(100 * time.Millisecond)
	}
}

// starts counts the completed start-ups in container-management's log.
func (k *Kanto) starts() int {
	b, _ := os.ReadFile(k.logPath)
	return strings.Count(string(b), startedLine)
}

// awaitFile waits until path exists; it gives up when abort is closed.
func awaitFile(path string, timeout time.Duration, abort <-chan struct{}) error {
	return awaitInDir(filepath.Dir(path), path+" to appear", timeout, abort, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// awaitInDir calls done after every change in dir (its files created,
// moved in or written) until it returns true; it gives up after timeout,
// or when abort is closed. what says what was awaited, for the error.
func awaitInDir(dir, what string, timeout time.Duration, abort <-chan struct{}, done func() bool) error {
	err := kerneltest.AwaitFiles(timeout, abort, func(add func(string, uint32)) {
		add(dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MODIFY)
	}, done)
	if errors.Is(err, kerneltest.ErrAborted) {
		return errors.New("exited while waiting for " + what)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Log returns what container-management logged so far.
func (k *Kanto) Log() string {
	b, _ := os.ReadFile(k.logPath)
	out, _ := os.ReadFile(k.logPath + ".out")
	return string(b) + string(out)
}

// CM runs kanto-cm with args; a non-zero exit is a result.
func (k *Kanto) CM(tb testing.TB, args ...string) (stdout, stderr string, exit int) {
	tb.Helper()
	return kerneltest.Run(tb, k.cli, args...)
}

// MustCM runs kanto-cm and fails the test unless it exits 0; it returns
// stdout.
func (k *Kanto) MustCM(tb testing.TB, args ...string) string {
	tb.Helper()
	out, errs, code := k.CM(tb, args...)
	if code != 0 {
		tb.Fatalf("kanto-cm %s: exit %d: %s%s\ncontainer-management log (end):\n%s", strings.Join(args, " "), code, out, errs, tail(k.Log(), 30))
	}
	return out
}

// Create runs kanto-cm create -f manifest and returns the new container.
func (k *Kanto) Create(tb testing.TB, manifest string) Container {
	tb.Helper()
	var m struct {
		Name string `json:"container_name"`
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Name == "" {
		tb.Fatalf("%s: no container_name (%v)", manifest, err)
	}
	k.MustCM(tb, "create", "-f", manifest)
	return k.Get(tb, m.Name)
}

// CreateJSON writes manifest (a container JSON) to a file and creates it.
func (k *Kanto) CreateJSON(tb testing.TB, manifest any) Container {
	tb.Helper()
	b, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	f, err := os.CreateTemp(k.dir, "manifest-*.json")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
	return k.Create(tb, f.Name())
}

// Start, Stop and Remove are kanto-cm start, stop and remove by name.
// Stop sends SIGKILL at once: the test entrypoints run as pid 1 without a
// SIGTERM handler, so the kernel ignores SIGTERM and Kanto would wait its
// stop timeout first. Remove stops a running container that way, then
// removes it. Stop and Remove return once containerd has deleted the
// container (see [Kanto.released]), also when Kanto misses the exit (see
// [Kanto.stop]).
func (k *Kanto) Start(tb testing.TB, name string) { tb.Helper(); k.MustCM(tb, "start", "-n", name) }

func (k *Kanto) Stop(tb testing.TB, name string) {
	tb.Helper()
	c := k.Get(tb, name)
	for try := 1; !k.stop(tb, c); try++ {
		if try == 3 {
			tb.Fatalf("Kanto missed the exit of container %s %d times in a row", name, try)
		}
		k.recoverMissedExit(tb, c)
		if c = k.Get(tb, name); c.State.Status != StatusRunning {
			return // not started again by its restart policy
		}
	}
}

// recoverMissedExit restarts container-management after it missed the exit
// of c's process (see stop), as an operator would: Kanto's record still
// says running, and nothing deletes the task, so runc never runs the
// poststop hooks. The new daemon restores c, finds its task exited and
// deletes it (runc delete runs the hooks); its restart policy may start c
// again, which the caller then stops again.
func (k *Kanto) recoverMissedExit(tb testing.TB, c Container) {
	tb.Helper()
	tb.Logf("Kanto missed the exit of container %s: restarting container-management so that it sees it", c.Name)
	before := k.Containerd.ContainerDeletes(Namespace, c.ID)
	k.Restart(tb, unix.SIGKILL)
	k.Containerd.AwaitEvents(tb, stopTimeout, func() bool { return k.Containerd.ContainerDeletes(Namespace, c.ID) > before })
	k.WaitState(tb, c.ID, stopTimeout, func(now Container) bool {
		return now.State.Status != StatusRunning || now.State.Pid != c.State.Pid
	})
}

func (k *Kanto) Remove(tb testing.TB, name string) {
	tb.Helper()
	c := k.Get(tb, name)
	if c.State.Status != StatusRunning || k.stop(tb, c) {
		k.released(tb, c.ID, "remove", "-n", name)
		return
	}
	// Kanto missed the exit (see stop) and may still count it as running:
	// force the removal. Kanto then sometimes never deletes the task
	// either; containerd is asked directly, as an operator would, so that
	// runc delete runs the poststop hook whose work the tests check.
	before := k.Containerd.ContainerDeletes(Namespace, c.ID)
	k.MustCM(tb, "remove", "-f", "-n", name)
	if _, _, code := k.Containerd.Ctr(tb, "-n", Namespace, "containers", "info", c.ID); code != 0 {
		return
	}
	if k.Containerd.WaitEvents(tb, stopTimeout, func() bool { return k.Containerd.ContainerDeletes(Namespace, c.ID) > before }) {
		return
	}
	tb.Logf("Kanto did not delete container %s after remove -f: deleting its task and container with ctr", c.ID)
	k.Containerd.Ctr(tb, "-n", Namespace, "tasks", "delete", "--force", c.ID)
	if out, errs, code := k.Containerd.Ctr(tb, "-n", Namespace, "containers", "delete", c.ID); code != 0 {
		tb.Fatalf("ctr containers delete %s: exit %d: %s%s", c.ID, code, out, errs)
	}
}

// stop stops c with SIGKILL and waits until containerd deleted its task.
// It returns false when kanto-cm stop failed although the process did
// exit: Kanto sometimes misses the exit of a process it just killed. It
// waits for the exit on an unbuffered channel only once containerd has
// answered its kill, and the goroutine that watches the task hands the
// exit over without blocking: an exit that comes first is dropped ("process
// exited internally" in its log). Kanto then waits for the whole timeout
// and answers "could not stop container ... with SIGKILL". The process is
// gone all the same: containerd reported its exit.
func (k *Kanto) stop(tb testing.TB, c Container) bool {
	tb.Helper()
	// -t: how long Kanto waits for the exit after the signal (default: its
	// stop timeout, short in this configuration; a loaded guest can take
	// longer than that). A missed exit costs all of it.
	args := []string{"stop", "-s", "SIGKILL", "-t", "20s", "-n", c.Name}
	exits := len(k.Containerd.ExitStatuses(Namespace, c.ID))
	before := k.Containerd.ContainerDeletes(Namespace, c.ID)
	out, errs, code := k.CM(tb, args...)
	if code != 0 {
		if !strings.Contains(out+errs, "could not stop container") || len(k.Containerd.ExitStatuses(Namespace, c.ID)) == exits {
			tb.Fatalf("kanto-cm %s: exit %d: %s%s\ncontainer-management log (end):\n%s", strings.Join(args, " "), code, out, errs, tail(k.Log(), 30))
		}
		tb.Logf("kanto-cm %s failed although containerd reported the exit (Kanto missed it): %s", strings.Join(args, " "), strings.TrimSpace(out+errs))
		return false
	}
	k.awaitDelete(tb, c.ID, before)
	return true
}

// released runs kanto-cm with args for the container with this id, then
// waits until containerd has deleted the container, if it still has it.
// kanto-cm stop and remove can return before Kanto has deleted the task
// (runc delete, which runs the poststop hooks) of a container whose
// process was exiting on its own at that moment.
func (k *Kanto) released(tb testing.TB, id string, args ...string) {
	tb.Helper()
	before := k.Containerd.ContainerDeletes(Namespace, id)
	k.MustCM(tb, args...)
	k.awaitDelete(tb, id, before)
}

// awaitDelete waits until containerd deleted the container with this id
// (more deletes than before), if it still has it.
func (k *Kanto) awaitDelete(tb testing.TB, id string, before int) {
	tb.Helper()
	if _, _, code := k.Containerd.Ctr(tb, "-n", Namespace, "containers", "info", id); code != 0 {
		return // gone already
	}
	k.Containerd.AwaitEvents(tb, stopTimeout, func() bool { return k.Containerd.ContainerDeletes(Namespace, id) > before })
}

// Container is what kanto-cm get prints, as far as tests use it.
type Container struct {
	ID           string `json:"container_id"`
	Name         string `json:"container_name"`
	RestartCount int    `json:"restart_count"`
	State        struct {
		Pid      int  `json:"pid"`
		Status   int  `json:"status"` // 2 running, 3 stopped, 5 exited
		ExitCode int  `json:"exit_code"`
		Running  bool `json:"running"`
	} `json:"state"`
	NetworkSettings struct {
		SandboxKey string `json:"sandbox_key"`
	} `json:"network_settings"`
}

// Kanto's container states (state.status).
const (
	StatusRunning = 2
	StatusStopped = 3
	StatusExited  = 5
)

// Get is kanto-cm get -n name.
func (k *Kanto) Get(tb testing.TB, name string) Container {
	tb.Helper()
	out := k.MustCM(tb, "get", "-n", name)
	var c Container
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		tb.Fatalf("kanto-cm get -n %s: %v\n%s", name, err, out)
	}
	return c
}

// LogPath is the container's json.log, where Kanto keeps every line the
// container printed (kanto-cm logs drops the oldest).
func LogPath(id string) string { return filepath.Join(HomeDir, "containers", id, "json.log") }

// Output returns what the container printed so far, across its runs: the
// "log" fields of its json.log, in order.
func Output(id string) string {
	b, _ := os.ReadFile(LogPath(id))
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		var entry struct {
			Log string `json:"log"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil {
			out.WriteString(entry.Log)
		}
	}
	return out.String()
}

// WaitLog waits until substr occurs at least n times in the container's
// output (across its runs) and returns the output.
func (k *Kanto) WaitLog(tb testing.TB, id, substr string, n int, timeout time.Duration) string {
	tb.Helper()
	k.await(tb, id, timeout, func() bool { return strings.Count(Output(id), substr) >= n },
		func() string { return fmt.Sprintf("%q not %d times in its output; output:\n%s", substr, n, Output(id)) })
	return Output(id)
}

// WaitState waits until Kanto's record of the container satisfies ok
// (Kanto rewrites it on every change of state) and returns it.
func (k *Kanto) WaitState(tb testing.TB, id string, timeout time.Duration, ok func(Container) bool) Container {
	tb.Helper()
	var c Container
	read := func() bool {
		b, err := os.ReadFile(filepath.Join(HomeDir, "containers", id, "config.json"))
		return err == nil && json.Unmarshal(b, &c) == nil && ok(c)
	}
	k.await(tb, id, timeout, read, func() string { return fmt.Sprintf("record not as wanted: %+v", c) })
	return c
}

// await calls done after every change under Kanto's container records
// (the container's directory, its json.log and config.json; inotify)
// until it returns true, or fails the test after timeout. The directories
// may appear while waiting (a deployment creates them).
func (k *Kanto) await(tb testing.TB, id string, timeout time.Duration, done func() bool, describe func() string) {
	tb.Helper()
	records := filepath.Join(HomeDir, "containers")
	dir := filepath.Join(records, id)
	// Kanto makes the records' directory with the first container.
	err := kerneltest.AwaitFiles(timeout, nil, func(add func(string, uint32)) {
		add(HomeDir, unix.IN_CREATE)
		add(records, unix.IN_CREATE)
		add(dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO)
	}, done)
	if err != nil {
		tb.Fatalf("container %s: %v: %s\ncontainer-management log (end):\n%s", id, err, describe(), tail(k.Log(), 40))
	}
}

// Restart stops container-management with sig and starts it again.
// SIGTERM is systemctl restart: Kanto stops every container on its way out
// and starts again those whose restart policy says so. SIGKILL is a crash:
// the containers go on running, and the new daemon restores them.
func (k *Kanto) Restart(tb testing.TB, sig unix.Signal) {
	tb.Helper()
	k.stopDaemon(tb, sig)
	k.startDaemon(tb)
}

// Freeze stops container-management's process (SIGSTOP): it sees nothing
// of what happens to its containers until [Kanto.Restart] kills it and
// starts a new one.
func (k *Kanto) Freeze(tb testing.TB) {
	tb.Helper()
	if err := k.cmd.Process.Signal(unix.SIGSTOP); err != nil {
		tb.Fatalf("freeze container-management: %v", err)
	}
}

func (k *Kanto) stopDaemon(tb testing.TB, sig unix.Signal) {
	tb.Helper()
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	_ = k.cmd.Process.Signal(sig)
	_ = k.cmd.Process.Signal(unix.SIGCONT) // if frozen: else sig waits
	select {
	case <-k.exited:
	case <-time.After(stopTimeout):
		tb.Errorf("container-management ignored %v for %v: killed", sig, stopTimeout)
		_ = k.cmd.Process.Kill()
		<-k.exited
	}
	k.cmd = nil
}

// shutdown removes every container Kanto still has, stops the daemon and
// removes its directories and bridge.
func (k *Kanto) shutdown(tb testing.TB) {
	if k.cmd != nil {
		if out, _, code := k.CM(tb, "list", "--quiet"); code == 0 {
			for _, id := range strings.Fields(out) {
				if _, errs, code := k.CM(tb, "remove", "-f", id); code != 0 {
					tb.Errorf("cleanup: kanto-cm remove -f %s: %s", id, errs)
				}
			}
		}
	}
	k.stopDaemon(tb, unix.SIGTERM)
	if tb.Failed() {
		tb.Logf("container-management log (end):\n%s", tail(k.Log(), 80))
	}
	for _, d := range []string{HomeDir, filepath.Dir(Socket), k.dir} {
		// Kanto's network namespaces are bind mounts under its run directory.
		ctrtest.UnmountUnder(tb, d)
		if err := os.RemoveAll(d); err != nil {
			tb.Errorf("remove %s: %v", d, err)
		}
	}
	// Kanto leaves its bridge; the next Kanto makes it again.
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		if _, errs, code := kerneltest.Run(tb, "ip", "link", "del", Bridge); code != 0 {
			tb.Errorf("remove %s: %s", Bridge, errs)
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
