package target

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcessStart returns when a process started (field 22 of /proc/PID/stat,
// in clock ticks since boot). With the pid it names one process for good:
// a pid can be reused, a (pid, start) pair cannot. It reads a file any user
// may read, so it works without ptrace rights over the process. A zombie
// counts as gone: os.ErrNotExist.
func ProcessStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads the state and start time from /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so fields are counted after its last ')'.
func parseStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 20", len(fields))
	}
	if fields[0][0] == 'Z' || fields[0][0] == 'X' {
		return 0, os.ErrNotExist
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: start time: %w", err)
	}
	return start, nil
}
