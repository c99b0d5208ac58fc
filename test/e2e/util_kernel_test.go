//go:build kernel

package e2e

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitid waits for pid to exit without reaping it (WNOWAIT).
func waitid(pid int, info *unix.Siginfo) error {
	_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(pid), uintptr(unsafe.Pointer(info)), unix.WEXITED|unix.WNOWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
