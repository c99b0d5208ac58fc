// Package netns runs a function with the calling thread in another network
// namespace. A socket stays in the namespace it was made in, so making it
// there is all it takes to serve a container from the host: the netlink
// sockets of package nl, and the bridge's CAN sockets (package bridge).
package netns

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on the calling thread moved to the network namespace of nsFD,
// then moves it back. If moving back fails the thread stays locked, and Go
// discards it when the goroutine ends, so no other goroutine runs there.
func Do(nsFD int, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return errors.Join(fnErr, fmt.Errorf("return to own network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
