//go:build kernel

package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// TestStartTakesNoHugePage: a start of kanto-can (on every container start,
// as hook or runc wrapper) must not make the kernel zero a 2 MB transparent
// huge page for the Go heap. A Go binary built with the defaults does (the
// control: this test binary, exiting before any test), so the kernel's
// count of huge-page faults shows the difference. The binaries are linked
// with the runtime's disablethp=1 (Makefile, GO_RUNTIME_DEFAULTS).
func TestStartTakesNoHugePage(t *testing.T) {
	kerneltest.Require(t)
	const runs = 20
	starts := func(name string, args ...string) int {
		t.Helper()
		before := hugePageFaults(t)
		for range runs {
			cmd := exec.Command(name, args...)
			cmd.Env = withoutGODEBUG(os.Environ())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
			}
		}
		return hugePageFaults(t) - before
	}
	control := starts(os.Args[0], "-test.run=^$")
	if control < runs/2 {
		t.Skipf("%d huge-page faults in %d starts of a default Go binary: this kernel gives a Go heap no huge page, nothing to show", control, runs)
	}
	// A few faults may come from this test's own process meanwhile; one
	// per start would be the defect.
	if got := starts(kerneltest.Binary(t), "--version"); got > 2 {
		t.Errorf("%d huge-page faults in %d starts of kanto-can --version (a default Go binary: %d); want none", got, runs, control)
	}
}

// hugePageFaults reads the kernel's count of transparent huge pages
// allocated on a page fault.
func hugePageFaults(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "thp_fault_alloc "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("/proc/vmstat: thp_fault_alloc %q: %v", v, err)
			}
			return n
		}
	}
	t.Skip("/proc/vmstat has no thp_fault_alloc: a kernel without transparent huge pages")
	return 0
}

func withoutGODEBUG(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			out = append(out, kv)
		}
	}
	return out
}
