package bridge

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SocketName is the daemon's socket in the records' directory.
const SocketName = "bridge.sock"

// AskTimeout bounds how long Ask waits for the daemon.
const AskTimeout = 10 * time.Second

// Ask has the daemon whose records are in dir bridge the attachment
// recorded as key (or bridge it anew after its grant changed), and returns
// once it forwards. Plain system calls, not package net: this runs on
// every bridged container's start.
func Ask(dir, key string) error {
	s, err := dial(dir)
	if err != nil {
		return fmt.Errorf("bridge mode needs kanto-can-daemon, and it is not running (%w)", err)
	}
	defer unix.Close(s)
	return roundTrip(s, "up "+key)
}

// Release has the daemon stop the bridge of key, whose attachment is
// removed: its socket in the container's namespace would keep that
// namespace alive. Without a daemon there is no bridge to stop.
func Release(dir, key string) error {
	s, err := dial(dir)
	if err != nil {
		return nil
	}
	defer unix.Close(s)
	return roundTrip(s, "down "+key)
}

func dial(dir string) (int, error) {
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	path := filepath.Join(dir, SocketName)
	if err := unix.Connect(s, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(s)
		return -1, fmt.Errorf("connect %s: %w", path, err)
	}
	return s, nil
}

// roundTrip sends one line and reads the answer: "ok" or "error: ...".
func roundTrip(s int, line string) error {
	tv := unix.NsecToTimeval(AskTimeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if _, err := unix.Write(s, []byte(line+"\n")); err != nil {
		return fmt.Errorf("kanto-can-daemon: %w", err)
	}
	var reply []byte
	buf := make([]byte, 512)
	for !strings.Contains(string(reply), "\n") {
		n, err := unix.Read(s, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("kanto-can-daemon did not answer within %v", AskTimeout)
		}
		if err != nil {
			return fmt.Errorf("kanto-can-daemon: %w", err)
		}
		if n == 0 {
			return errors.New("kanto-can-daemon closed the connection without an answer")
		}
		reply = append(reply, buf[:n]...)
	}
	answer, _, _ := strings.Cut(string(reply), "\n")
	if answer == "ok" {
		return nil
	}
	return errors.New(strings.TrimPrefix(answer, "error: "))
}
