package kerneltest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// modprobeSysctl is the program the kernel runs to load a module on
// demand (request_module).
const modprobeSysctl = "/proc/sys/kernel/modprobe"

// UnloadModule makes the kernel one without the module for a while, as a
// device without it would be: the module is removed (modprobe -r) and the
// kernel's loading on demand is turned off (kernel.modprobe is /bin/false)
// meanwhile. The returned reload loads it again and restores
// kernel.modprobe; cleanup calls it if the test did not.
func UnloadModule(tb testing.TB, name string) (reload func()) {
	tb.Helper()
	Require(tb)
	name = moduleName(name)
	requireModules(tb, name)
	old, err := os.ReadFile(modprobeSysctl)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(modprobeSysctl, []byte("/bin/false"), 0); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	reload = func() {
		once.Do(func() {
			tb.Helper()
			if err := os.WriteFile(modprobeSysctl, bytes.TrimSpace(old), 0); err != nil {
				tb.Errorf("restore %s: %v", modprobeSysctl, err)
			}
			if out, err := exec.Command("modprobe", name).CombinedOutput(); err != nil {
				tb.Errorf("modprobe %s: %v: %s", name, err, bytes.TrimSpace(out))
			}
		})
	}
	tb.Cleanup(reload)
	removeModule(tb, name)
	return reload
}

// WithoutModule makes the kernel one without the module, as a device
// whose kernel was built without it (a Raspberry Pi's without vxcan): the
// module is removed and an "install NAME /bin/false" line in modprobe.d
// makes every load of it fail, on demand or by hand, while other modules
// still load. Cleanup removes the line and loads the module again.
func WithoutModule(tb testing.TB, name string) {
	tb.Helper()
	Require(tb)
	name = moduleName(name)
	requireModules(tb, name)
	conf := filepath.Join("/etc/modprobe.d", "kanto-can-test-without-"+name+".conf")
	if err := os.WriteFile(conf, []byte("install "+name+" /bin/false\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.Remove(conf); err != nil {
			tb.Errorf("remove %s: %v", conf, err)
		}
		if out, err := exec.Command("modprobe", name).CombinedOutput(); err != nil {
			tb.Errorf("modprobe %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
	})
	removeModule(tb, name)
	if err := exec.Command("modprobe", name).Run(); err == nil {
		tb.Fatalf("modprobe %s succeeded with %s in place", name, conf)
	}
	// Require's check (vxcan is a base module) must not try to load it
	// meanwhile: counted as loaded, as it is again after cleanup.
	modules.Lock()
	modules.loaded[name] = true
	modules.Unlock()
}

// removeModule unloads a module and forgets that it was loaded.
func removeModule(tb testing.TB, name string) {
	tb.Helper()
	modules.Lock()
	delete(modules.loaded, name)
	modules.Unlock()
	// Busy for a moment after its last user (a socket closing): retried.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("modprobe", "-r", name).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("modprobe -r %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
		time.Sleep(100 * time.Millisecond) // a retry, not synchronisation
	}
	if _, err := os.Stat(filepath.Join("/sys/module", name)); err == nil {
		tb.Fatalf("modprobe -r %s: still in /sys/module (built in?)", name)
	}
}

// Count is how many of the log lines read so far contain every one of
// want.
func (d *Daemon) Count(want ...string) int {
	n := 0
	for _, l := range d.Log.Slice(0, d.next) {
		if ContainsAll(l, want...) {
			n++
		}
	}
	return n
}
