//go:build kernel

package podman

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kanto-can/kanto-can/internal/hook"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	. "github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Rootless podman (uid 65534 with a subordinate id range, as
// /etc/subuid gives a user) runs kanto-can's hooks.d entries in its user
// namespace: a container that asks for CAN fails to start with
// kanto-can's line saying why, one that asks for nothing starts as before.
func TestRootlessPodmanRefused(t *testing.T) {
	bus, _ := kerneltest.Kvaser(t)
	InstallHooks(t, deployDir(t)) // as an admin installs them
	const uid = 65534
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		old, _ := os.ReadFile(f)
		if err := os.WriteFile(f, append(old, []byte("nobody:200000:65536\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(f, old, 0o644) })
	}
	home := t.TempDir()
	if err := os.Chmod(filepath.Dir(home), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(home, "run")
	image := filepath.Join(home, "image.tar")
	if err := os.WriteFile(image, ctrtest.OCIArchive(t, ImageRef, map[string]string{
		"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t),
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	podman := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(PodmanBin, append([]string{
			"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
			"--storage-driver", "vfs",
		}, args...)...)
		cmd.Dir = home
		cmd.Env = []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + runDir, "USER=nobody",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, errOut, code := kerneltest.RunCmd(t, cmd)
		return out + errOut, code
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(runDir, uid, uid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		podman("rm", "-af", "-t", "0")
		// The rootless pause process keeps the user namespace.
		podman("system", "migrate")
	})
	if out, code := podman("load", "-i", image); code != 0 {
		t.Fatalf("rootless podman load: exit %d: %s", code, out)
	}
	check := []string{"/bin/canapp", "check", "can0"}

	// Asking for nothing: the hooks leave it alone; no can0 (exit 3).
	out, code := podman(append([]string{"run", "--rm", "--network", "none", ImageRef}, check...)...)
	if code != 3 {
		t.Fatalf("rootless, no request: exit %d, want 3: %s", code, out)
	}
	// Asking for CAN: refused with kanto-can's line.
	for _, flag := range []string{"--annotation=" + hook.Annotation + "=" + bus, "--env=" + hook.EnvVar + "=" + bus} {
		out, code = podman(append([]string{"run", "--rm", "--network", "none", flag, ImageRef}, check...)...)
		if code == 0 || !strings.Contains(out, "kanto-can: ") || !strings.Contains(out, "rootless podman or Docker") {
			t.Fatalf("rootless %s: exit %d, want non-zero and kanto-can's refusal in:\n%s", flag, code, out)
		}
		t.Logf("rootless podman run %s said: %s", flag, strings.TrimSpace(out))
	}
	leftover.RequireNone(t, record.DefaultDir)
}
