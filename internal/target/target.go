// Package target finds the network namespace of the container to attach:
// by process id or by the path of a network namespace file. (Kanto
// container names and ids resolve through containerd to a pid.)
package target

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Target is an open network namespace plus a stable identity for it.
type Target struct {
	NS *os.File
	// ID identifies the namespace for as long as it lives (its inode); host
	// end names and records derive from it, so it must not depend on how the
	// user named the target.
	ID string
	// Label is how the user named the target, for messages and listings.
	Label string
	// Container is the container's id (containerd's and Kanto's) when
	// known: it finds the attachments again once the process is gone.
	Container string
	// PID is the process the namespace was found through (0 for a
	// namespace file): for a container, its init process, whose exit ends
	// the attachment even when something else keeps the namespace alive.
	PID int
	// Started is the PID's start time (see ProcessStart) when known.
	Started uint64
	// EndsWithTask: the attachment ends when containerd reports that the
	// Container's task exited, for a target whose process is not known
	// when it is attached (a pod sandbox, whose network is set up before
	// its task starts).
	EndsWithTask bool
}

// Close releases the namespace handle.
func (t *Target) Close() error { return t.NS.Close() }

// FromPID opens the network namespace of a running process.
func FromPID(pid int) (*Target, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: not a process id", pid)
	}
	path := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	f, err := openFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Stat("/proc/" + strconv.Itoa(pid)); statErr == nil {
			return nil, fmt.Errorf("pid %d has exited", pid)
		}
		return nil, fmt.Errorf("pid %d does not exist", pid)
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: open network namespace: %w", pid, err)
	}
	t, err := fromFile(f, "pid "+strconv.Itoa(pid))
	if err != nil {
		return nil, err
	}
	t.PID = pid
	return t, nil
}

// FromPath opens a network namespace file such as /run/netns/NAME or
// /proc/PID/ns/net.
func FromPath(path string) (*Target, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", path, err)
	}
	return fromFile(f, "netns "+path)
}

// openFile opens read-only without os.Open, which on Linux offers every
// file to the runtime's network poller (an epoll_ctl, refused for a
// namespace file) and creates the poller on first use. Other files on the
// start path are still opened with package os (the hook's bundle
// config.json, /proc/PID/stat, the attachment's record), so an attach
// creates the poller anyway: this saves one registration.
func openFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// nsGetNSType is NS_GET_NSTYPE from include/uapi/linux/nsfs.h.
const nsGetNSType = 0xb703

func fromFile(f *os.File, label string) (*Target, error) {
	kind, err := unix.IoctlRetInt(int(f.Fd()), nsGetNSType)
	if err != nil || kind != unix.CLONE_NEWNET {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace", label)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	if own, err := isOwnNetNS(st); err == nil && own {
		f.Close()
		return nil, fmt.Errorf("%s shares the host's network namespace: it sees the host's CAN interfaces already, kanto-can attaches and detaches nothing there", label)
	}
	return &Target{NS: f, ID: "netns:" + strconv.FormatUint(st.Ino, 10), Label: label}, nil
}

// HostNetwork reports whether pid runs in the caller's network namespace.
func HostNetwork(pid int) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st); err != nil {
		return false, err
	}
	return isOwnNetNS(st)
}

// isOwnNetNS reports whether st (of a namespace file) is the calling
// thread's network namespace. thread-self, not self: a Go program's main
// thread may have been moved to another namespace and parked.
func isOwnNetNS(st unix.Stat_t) (bool, error) {
	var own unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &own); err != nil {
		return false, err
	}
	return own.Ino == st.Ino && own.Dev == st.Dev, nil
}
