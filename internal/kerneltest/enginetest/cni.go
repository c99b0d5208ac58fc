package enginetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// EnvCNI names the CNI plugin binary under test (make kernel-tests builds
// out/bin/kanto-can-cni).
const EnvCNI = "KANTO_CAN_CNI"

// StdCNIPlugins is where Debian's containernetworking-plugins are.
const StdCNIPlugins = "/usr/lib/cni"

// CNIBinDir returns a CNI bin dir holding the plugin under test as
// kanto-can-cni and Debian's standard plugins (bridge, host-local,
// loopback), as an admin would install them.
func CNIBinDir(t testing.TB) string {
	t.Helper()
	kerneltest.Require(t)
	p := os.Getenv(EnvCNI)
	if p == "" {
		t.Fatalf("%s is not set: make kernel-tests passes the plugin's path", EnvCNI)
	}
	dir := t.TempDir()
	if err := os.Symlink(p, filepath.Join(dir, "kanto-can-cni")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bridge", "host-local", "loopback"} {
		src := filepath.Join(StdCNIPlugins, name)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("%s: %v (test/vm/setup-host.sh installs containernetworking-plugins)", src, err)
		}
		if err := os.Symlink(src, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
