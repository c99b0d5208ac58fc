package enginetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// PodmanBin is Debian's podman.
const PodmanBin = "/usr/bin/podman"

// HooksDir is where Debian's podman 4.3 reads OCI hooks (containers.conf's
// default hooks_dir).
const HooksDir = "/usr/share/containers/oci/hooks.d"

// Podman is rootful podman with its storage on the guest's tmpfs.
type Podman struct {
	dir string
}

// StartPodman prepares podman: storage under a fresh directory of the
// guest's /tmp (a tmpfs: overlay storage works there), kanto-can's hooks.d
// entries from deployDir (the repository's deploy/podman) installed in
// HooksDir with the hook's path replaced by the binary under test, and the
// test image loaded from an OCI layout archive (podman load).
func StartPodman(t *testing.T, deployDir string) *Podman {
	t.Helper()
	kerneltest.Require(t)
	if _, err := os.Stat(PodmanBin); err != nil {
		t.Fatalf("podman: %v (test/vm/setup-host.sh installs it)", err)
	}
	p := &Podman{dir: t.TempDir()}
	InstallHooks(t, deployDir)
	img := writeImage(t, p.dir, "image.tar", ctrtestOCI(t))
	p.Must(t, "load", "-i", img)
	t.Cleanup(func() {
		// Every container of the test, then the storage's mounts.
		p.Run(t, "rm", "-af", "-t", "0")
		// containers/storage keeps its overlay directory mounted.
		unix.Unmount(filepath.Join(p.dir, "storage", "overlay"), unix.MNT_DETACH)
	})
	return p
}

// InstallHooks installs kanto-can's hooks.d entries from deployDir (the
// repository's deploy/podman) in HooksDir, with the hook's path replaced
// by the binary under test, for the rest of the test.
func InstallHooks(t *testing.T, deployDir string) {
	t.Helper()
	if err := os.MkdirAll(HooksDir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := filepath.Glob(filepath.Join(deployDir, "*.json"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("no hook files in %s: %v", deployDir, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]any
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		h["hook"].(map[string]any)["path"] = kerneltest.Binary(t)
		out, _ := json.Marshal(h)
		dst := filepath.Join(HooksDir, filepath.Base(e))
		if err := os.WriteFile(dst, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dst) })
	}
}

// Args are podman's global flags for this instance: no systemd and no
// journald in the guest.
func (p *Podman) Args(args ...string) []string {
	return append([]string{
		"--root", filepath.Join(p.dir, "storage"), "--runroot", filepath.Join(p.dir, "run"),
		"--tmpdir", filepath.Join(p.dir, "libpod"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
	}, args...)
}

// Run runs podman and returns its output (stdout and stderr) and status.
func (p *Podman) Run(t testing.TB, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := kerneltest.Run(t, PodmanBin, p.Args(args...)...)
	return out + errOut, code
}

// Must runs podman and fails the test unless it exits 0.
func (p *Podman) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, code := p.Run(t, args...)
	if code != 0 {
		t.Fatalf("podman %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// Start starts podman with args (e.g. run ...), its output read as it comes.
func (p *Podman) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return Start(t, PodmanBin, p.Args(args...)...)
}
