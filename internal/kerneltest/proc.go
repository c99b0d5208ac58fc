package kerneltest

import (
	"fmt"
	"os"
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
