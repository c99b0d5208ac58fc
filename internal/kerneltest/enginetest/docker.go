package enginetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// Debian's Docker: always by full path (a docker CLI elsewhere in PATH may
// not be Debian's).
const (
	DockerBin  = "/usr/bin/docker"
	DockerdBin = "/usr/sbin/dockerd"
)

// RuntimeName is kanto-can's name as Docker's runtime in the tests
// (docker run --runtime kanto-can).
const RuntimeName = "kanto-can"

// Docker is a dockerd of the test's own, stopped at cleanup.
type Docker struct {
	dir  string
	sock string
}

// StartDocker starts dockerd with its data and exec roots under a fresh
// directory of the guest's /tmp (a tmpfs), without iptables, kanto-can
// (the binary under test) as runtime RuntimeName, as daemon.json's
// "runtimes" would add it; waits until it answers and loads the test image
// from a Docker archive (docker load).
func StartDocker(t *testing.T) *Docker {
	t.Helper()
	kerneltest.Require(t)
	for _, b := range []string{DockerBin, DockerdBin} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("docker: %v (test/vm/setup-host.sh installs docker.io)", err)
		}
	}
	d := &Docker{dir: t.TempDir()}
	d.sock = filepath.Join(d.dir, "docker.sock")
	cfg := `{"runtimes": {"` + RuntimeName + `": {"path": "` + kerneltest.Binary(t) + `"}}}`
	cfgPath := filepath.Join(d.dir, "daemon.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(d.dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(DockerdBin, "--config-file", cfgPath,
		"--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"), "-H", "unix://"+d.sock,
		"--iptables=false", "--ip6tables=false", "--storage-driver=overlay2")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		d.Run(t, "rm", "-f", "$(all)")
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(Wait):
			cmd.Process.Kill()
			<-exited
		}
		log.Close()
		// dockerd leaves its overlay2 home and netns mounts behind.
		kerneltest.Run(t, "umount", "-R", "-l", filepath.Join(d.dir, "data"))
		kerneltest.Run(t, "umount", "-R", "-l", filepath.Join(d.dir, "exec"))
	})
	// Ready when the API answers: each try is a request, bounded.
	deadline := time.Now().Add(Wait)
	for {
		if _, code := d.Run(t, "version"); code == 0 {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("dockerd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("dockerd did not answer within %s:\n%s", Wait, b)
		}
		time.Sleep(200 * time.Millisecond) // between requests: the daemon has no readiness event to wait for
	}
	img := writeImage(t, d.dir, "image.tar", ctrtestDocker(t))
	d.Must(t, "load", "-i", img)
	return d
}

// Args are docker's client flags for this daemon.
func (d *Docker) Args(args ...string) []string {
	return append([]string{"-H", "unix://" + d.sock}, args...)
}

// Run runs the docker client; "$(all)" as the last argument of rm stands
// for every container.
func (d *Docker) Run(t testing.TB, args ...string) (string, int) {
	t.Helper()
	if n := len(args); n > 0 && args[n-1] == "$(all)" {
		ids, code := d.Run(t, "ps", "-aq")
		if code != 0 || strings.TrimSpace(ids) == "" {
			return ids, code
		}
		args = append(args[:n-1], strings.Fields(ids)...)
	}
	out, errOut, code := kerneltest.Run(t, DockerBin, d.Args(args...)...)
	return out + errOut, code
}

// Must runs docker and fails the test unless it exits 0.
func (d *Docker) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, code := d.Run(t, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// Start starts the docker client with args (e.g. run ...), its output read
// as it comes.
func (d *Docker) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return Start(t, DockerBin, d.Args(args...)...)
}
