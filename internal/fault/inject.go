//go:build faultinject

package fault

import (
	"os"

	"golang.org/x/sys/unix"
)

// Point kills the process when KANTO_CAN_FAULT names this point.
func Point(name string) {
	if os.Getenv("KANTO_CAN_FAULT") == name {
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL is not deliverable late, but never return
	}
}
