package kerneltest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ProcStatus returns a memory field of /proc/PID/status ("VmRSS",
// "VmHWM", "RssAnon", ...) in bytes.
func ProcStatus(tb testing.TB, pid int, field string) float64 {
	tb.Helper()
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				tb.Fatalf("%s: %s: %v", path, line, err)
			}
			return kb * 1024
		}
	}
	tb.Fatalf("%s: no %s", path, field)
	return 0
}

// InstallFile writes a file in the guest for the test (a config where a
// program reads it) and removes it at cleanup. The guest's root is a tmpfs
// overlay: nothing reaches the host.
func InstallFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(path) })
}
