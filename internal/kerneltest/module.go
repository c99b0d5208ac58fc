package kerneltest

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Modules every kernel test needs: CAN sockets, the gateway, vxcan.
var baseModules = []string{"can", "can_raw", "can_gw", "vxcan"}

// Modules known to be loaded (or built in) in this process's kernel.
var modules struct {
	sync.Mutex
	loaded map[string]bool
}

// RequireModules makes sure the running kernel has the named modules loaded,
// with modprobe if need be (the guest loads the usual ones at boot). A module
// the kernel does not have at all (no .ko in its modules.dep, not built in)
// skips the test with the module's name: a kernel of the matrix may lack a
// driver, and such a test must say so rather than pass. Any other failure
// (modprobe refuses a module the kernel has) fails the test.
func RequireModules(tb testing.TB, names ...string) {
	tb.Helper()
	Require(tb)
	requireModules(tb, names...)
}

func requireModules(tb testing.TB, names ...string) {
	tb.Helper()
	modules.Lock()
	defer modules.Unlock()
	if modules.loaded == nil {
		modules.loaded = map[string]bool{}
	}
	for _, raw := range names {
		name := moduleName(raw)
		if modules.loaded[name] {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/module", name)); err == nil {
			modules.loaded[name] = true
			continue
		}
		out, err := exec.Command("modprobe", name).CombinedOutput()
		if err == nil {
			modules.loaded[name] = true
			continue
		}
		release := kernelRelease(tb)
		known, kerr := moduleKnown(filepath.Join("/lib/modules", release), name)
		switch {
		case kerr != nil:
			tb.Fatalf("modprobe %s: %v: %s; and cannot tell whether kernel %s has it: %v",
				name, err, bytes.TrimSpace(out), release, kerr)
		case !known:
			tb.Skipf("kernel %s has no module %s (neither in modules.dep nor built in): skipped", release, name)
		default:
			tb.Fatalf("modprobe %s (kernel %s has it): %v: %s", name, release, err, bytes.TrimSpace(out))
		}
	}
}

// moduleName is the kernel's name of a module: dashes are underscores.
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func kernelRelease(tb testing.TB) string {
	tb.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		tb.Fatalf("uname: %v", err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// moduleKnown says whether the kernel whose module tree is dir
// (/lib/modules/RELEASE) has the module, as a file (modules.dep) or built
// in (modules.builtin).
func moduleKnown(dir, name string) (bool, error) {
	dep, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return false, err
	}
	defer dep.Close()
	if listsModule(dep, name, true) {
		return true, nil
	}
	builtin, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer builtin.Close()
	return listsModule(builtin, name, false), nil
}

// listsModule reads modules.dep ("kernel/net/can/can-gw.ko.xz: deps",
// colon) or modules.builtin ("kernel/net/can/can.ko") and says whether one
// line names the module.
func listsModule(r io.Reader, name string, colon bool) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if colon {
			i := strings.IndexByte(line, ':')
			if i < 0 {
				continue
			}
			line = line[:i]
		}
		base := path.Base(strings.TrimSpace(line))
		i := strings.Index(base, ".ko")
		if i <= 0 {
			continue
		}
		if moduleName(base[:i]) == name {
			return true
		}
	}
	return false
}
