package kerneltest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// BacklogDrops sums the kernel's receive backlog drops over all CPUs (the
// second column of /proc/net/softnet_stat, hexadecimal): frames lost
// before any CAN code saw them.
func BacklogDrops(tb testing.TB) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		tb.Fatal(err)
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			tb.Fatalf("softnet_stat line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			tb.Fatal(err)
		}
		sum += v
	}
	return sum
}
