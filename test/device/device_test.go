//go:build device

// Package device is the device test bed (make device-test): a Debian 12
// system booted with systemd as PID 1 from a disk image (built and cached
// by test/device/build-image.sh), in QEMU, amd64 or arm64
// (DEVTEST_ARCH), with two emulated Kvaser controllers on one CAN bus.
// The test runs on the host: it puts what a device owner installs on a 9p
// share (kanto-can's Debian packages as make dist makes them, Kanto's
// container-management with its own unit and config, a networkd file for
// can0, a container image and two manifests), boots the image through a
// copy-on-write overlay of its own, and follows the guest's console while
// the guest installs, reboots, checks, upgrades, reboots for real, checks
// again, removes, installs again and purges (test/device/guest.sh). Every
// check's result comes back on the share; the test fails on any failed or
// missing check.
package device

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

// The checks each boot must pass (test/device/guest.sh), in its order.
var (
	installChecks = []string{"kanto-installed", "kanto-can-installed", "networkd-can0", "image-imported", "manifests-deployed"}
	bootChecks    = []string{
		"disk-persisted", "system-running", "containerd-debian", "containerd-active",
		"kanto-unit-is-kantos", "kanto-active", "kanto-can-active", "kanto-can-caps",
		"can0-by-networkd", "container-started", "restart-policy-always", "can0-before-entrypoint",
		"app-ready", "frames-both-ways", "one-attachment", "one-container", "daemon-no-warnings",
		"plain-running",
	}
	upgradeChecks = []string{"package-is-previous", "upgrade-keeps-attachment", "frames-after-upgrade"}
	removeChecks  = []string{
		"same-container-after-reboot", "package-is-current",
		"removed", "removed-unit-stopped", "removed-nothing-in-kernel", "removed-can-container-fails-clearly", "removed-others-run",
		"reinstalled", "reinstalled-container-starts", "reinstalled-frames-both-ways", "reinstalled-one-attachment",
		"purged", "purged-nothing-in-kernel", "purged-no-files", "purged-others-run",
		"late-setup",
	}
	lateChecks = []string{
		"late-kanto-can-active", "late-bus-absent", "late-required-fails-clearly", "late-optional-started",
		"late-module-loaded", "late-optional-routed", "late-optional-frames-both-ways",
		"late-required-stays-down", "late-required-started-by-owner",
	}
	expected = [][]string{installChecks, concat(bootChecks, upgradeChecks), concat(bootChecks, removeChecks), lateChecks}
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

const (
	appName   = "devapp"   // the container that asks for can0
	plainName = "plainapp" // one that does not
	lateName  = "lateapp"  // boot 4's, whose bus is optional
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func TestDeviceBootsAndReboots(t *testing.T) {
	arch := env("DEVTEST_ARCH", runtime.GOARCH)
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(repo, ".cache", "device", arch)
	for _, f := range []string{"root.img", "vmlinuz", "initramfs.cpio"} {
		if _, err := os.Stat(filepath.Join(cache, f)); err != nil {
			t.Fatalf("no %s image: run test/device/build-image.sh %s (make setup-device): %v", arch, arch, err)
		}
	}
	// What make device-test built for this architecture: the packages
	// (the current one, and the same tree as an older version to upgrade
	// from) and the test app.
	built := env("DEVTEST_OUT", filepath.Join(repo, "out", "device", arch))
	kanto := env("KANTO_CAN_KANTO", filepath.Join(repo, ".cache", "kanto"))
	kantoBin := kanto
	if arch != "amd64" {
		kantoBin = filepath.Join(kanto, arch)
	}

	// The share: everything the owner installs, and the guest's job; the
	// guest's results and, for each boot, its journal and Kanto's log
	// (kept after the test, in out/device/ARCH/share).
	share := filepath.Join(built, "share")
	if err := os.RemoveAll(share); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(repo, "test/device/guest.sh"), filepath.Join(share, "guest.sh"), 0o755)
	for _, which := range []string{"previous", "current"} {
		debs, err := filepath.Glob(filepath.Join(built, "debs", which, "kanto-can_*_"+arch+".deb"))
		if err != nil || len(debs) != 1 {
			t.Fatalf("want one %s package for %s in %s (make device-test builds it): %v %v", which, arch, filepath.Join(built, "debs", which), debs, err)
		}
		copyFile(t, debs[0], filepath.Join(share, "debs", which+".deb"), 0o644)
		// The version the guest must see: kanto-can_VERSION_ARCH.deb.
		version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(debs[0]), "kanto-can_"), "_"+arch+".deb")
		writeFile(t, filepath.Join(share, "debs", which+".version"), version+"\n")
	}
	for _, b := range []string{"container-management", "kanto-cm"} {
		copyFile(t, filepath.Join(kantoBin, b), filepath.Join(share, "kanto", b), 0o755)
	}
	for _, u := range []string{"container-management.service", "container-management.config.json"} {
		copyFile(t, filepath.Join(kanto, "units", u), filepath.Join(share, "kanto/units", u), 0o644)
	}
	writeFile(t, filepath.Join(share, "80-can0.network"), "[Match]\nName=can0\n\n[CAN]\nBitRate=500000\n")
	// The app: can0 must be there when the entrypoint starts (the line
	// says so, with the boot's id), then it answers every frame with id+1.
	entry := `if [ -e /sys/class/net/can0 ]; then c=present; else c=missing; fi; ` +
		`echo "devtest start boot=$(cat /proc/sys/kernel/random/boot_id) can0=$c"; ` +
		`[ $c = present ] || exit 1; exec /usr/bin/canapp serve can0`
	hooks := []map[string]any{
		{"path": "/usr/bin/kanto-can", "args": []string{"kanto-can", "hook", "prestart"}, "type": 0},
		{"path": "/usr/bin/kanto-can", "args": []string{"kanto-can", "hook", "poststop"}, "type": 2},
	}
	writeManifest(t, share, appName, []string{"KANTO_CAN=can0"}, entry, hooks)
	// Boot 4's: the same app on an optional bus (the bus appears late).
	writeManifest(t, share, lateName, []string{"KANTO_CAN=can0,optional"}, entry, hooks)
	// A container without CAN: it must run whatever happens to kanto-can
	// (removal included).
	writeManifest(t, share, plainName, nil, "echo plain up; exec sleep 100000", nil)
	// The image for the guest's architecture: its own busybox, taken from
	// the disk image (debugfs reads the file system without mounting it),
	// and the test app built for it.
	busybox := filepath.Join(t.TempDir(), "busybox")
	// (dump -p: with the file's mode; without, it is not executable and
	// runc cannot exec /bin/sh.)
	run(t, "debugfs", "-R", "dump -p /usr/bin/busybox "+busybox, filepath.Join(cache, "root.img"))
	if fi, err := os.Stat(busybox); err != nil || fi.Size() == 0 || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("no executable busybox from the %s image: %v %v", arch, fi, err)
	}
	img := ctrtest.OCIArchiveFor(t, arch, "docker.io/kanto-can/devapp:1", map[string]string{
		"/bin/busybox":    busybox,
		"/usr/bin/canapp": filepath.Join(built, "canapp"),
	})
	writeFile(t, filepath.Join(share, "image.tar"), string(img))

	// A copy-on-write overlay of the cached image: this run's disk, kept
	// across the guest's reboots, gone after the test.
	disk := filepath.Join(t.TempDir(), "disk.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", filepath.Join(cache, "root.img"), disk)

	// Four boots and what happens between them, emulated (arm64 on x86
	// slower than amd64).
	timeout, err := time.ParseDuration(env("DEVTEST_TIMEOUT", "90m"))
	if err != nil {
		t.Fatalf("DEVTEST_TIMEOUT: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "test/device/qemu.sh"), arch,
		"--kernel", filepath.Join(cache, "vmlinuz"), "--initrd", filepath.Join(cache, "initramfs.cpio"),
		"--disk", disk, "--share", share, "--kvaser", "2", "--timeout", fmt.Sprint(int(timeout.Seconds())),
		"--append", "devtest.share systemd.show_status=false")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Follow the console: the guest's ready and done lines mark the boots.
	marker := regexp.MustCompile(`DEVTEST boot=(\d+) (ready|done)`) // the console may put a login prompt before it
	var ready, done []time.Duration
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Printf("guest: %s\n", line)
		m := marker.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch m[2] {
		case "ready":
			ready = append(ready, time.Since(start))
		case "done":
			done = append(done, time.Since(start))
		}
	}
	if _, err := io.Copy(io.Discard, out); err != nil {
		t.Log(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("QEMU: %v", err)
	}
	// Boot times: from the machine's start (or the previous boot's end,
	// the reboot) to the guest's agent running after the boot finished.
	var prev time.Duration
	for i := range ready {
		t.Logf("boot %d: ready %.1fs after %s", i+1, (ready[i] - prev).Seconds(), map[bool]string{true: "QEMU started", false: "the reboot"}[i == 0])
		if i < len(done) {
			prev = done[i]
		}
	}
	t.Logf("total %.0fs", time.Since(start).Seconds())
	if len(done) != len(expected) {
		t.Errorf("the guest finished %d boots, want %d", len(done), len(expected))
	}
	for i, want := range expected {
		name := fmt.Sprintf("boot%d", i+1)
		b, err := os.ReadFile(filepath.Join(share, "results", name))
		if err != nil {
			t.Errorf("%s: no results: %v", name, err)
			continue
		}
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			switch {
			case strings.HasPrefix(l, "ok "):
				got[strings.TrimPrefix(l, "ok ")] = "ok"
			case strings.HasPrefix(l, "FAIL "):
				k, v, _ := strings.Cut(strings.TrimPrefix(l, "FAIL "), ": ")
				got[k] = v
			}
		}
		for _, c := range want {
			switch r, ok := got[c]; {
			case !ok:
				t.Errorf("%s: check %s did not run", name, c)
			case r != "ok":
				t.Errorf("%s: %s failed: %s", name, c, r)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d checks ran, want %d", name, len(got), len(want))
		}
		if t.Failed() {
			showDiag(t, filepath.Join(share, "diag", name))
		}
	}
}

// writeManifest writes a Kanto container manifest NAME.json to dir: the
// test image, restart policy always, on Kanto's default bridge network.
func writeManifest(t *testing.T, dir, name string, env []string, entry string, hooks []map[string]any) {
	t.Helper()
	m := map[string]any{
		"container_name": name,
		"container_id":   name,
		"image":          map[string]any{"name": "docker.io/kanto-can/devapp:1"},
		"host_config": map[string]any{
			"network_mode":   "bridge",
			"restart_policy": map[string]any{"type": "always"},
		},
		"config": map[string]any{"env": env, "cmd": []string{"/bin/sh", "-c", entry}},
	}
	if hooks != nil {
		m["hooks"] = hooks
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, name+".json"), string(b)+"\n")
}

// showDiag logs the end of what the guest left for a failed boot.
func showDiag(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"kanto-cm-list", "container-management.log", "journal"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		t.Logf("%s/%s (last %d lines):\n%s", filepath.Base(dir), f, len(lines), strings.Join(lines, "\n"))
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
