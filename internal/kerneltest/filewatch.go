package kerneltest

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ErrAborted is AwaitFiles' error when its abort channel closed first.
var ErrAborted = errors.New("aborted")

// AwaitFiles waits on inotify for files to change until done returns true:
// a wait on an event, not a sleep. Before each call of done it calls watch
// with a function that adds an inotify watch of path for mask, so that a
// watch of a file or directory that did not exist yet is added once it
// may (adding one again is harmless); watches are added before done looks,
// so that no change between the two is missed. It gives up after timeout
// with an error naming it, or with ErrAborted once abort (nil: never) is
// closed.
func AwaitFiles(timeout time.Duration, abort <-chan struct{}, watch func(add func(path string, mask uint32)), done func() bool) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	defer unix.Close(fd)
	add := func(path string, mask uint32) { _, _ = unix.InotifyAddWatch(fd, path, mask) }
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		watch(add)
		if done() {
			return nil
		}
		select {
		case <-abort:
			return ErrAborted
		default:
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("not within %v", timeout)
		}
		// Wake at least every second to notice abort.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(min(left, time.Second)/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		for {
			if _, err := unix.Read(fd, buf); err != nil {
				break // EAGAIN: drained
			}
		}
	}
}
