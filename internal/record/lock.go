package record

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockName is the lock file in the records' directory.
const lockName = ".lock"

// Lock takes the records' directory lock, blocking until it is free, and
// returns the function that releases it. Everything that changes
// attachments (attach, detach, the daemon's reconcile) holds it, so a
// reconcile never sees an attachment half made by a live process: what it
// finds half made belongs to one that died, and is safe to remove. The
// kernel releases the lock of a process that dies, however it dies.
func Lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	path := filepath.Join(dir, lockName)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("records: lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("records: lock %s: %w", path, err)
	}
	// Closing the descriptor releases the lock.
	return func() { unix.Close(fd) }, nil
}
