package record

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lockName is the lock file in the records' directory.
const lockName = ".lock"

// LockTimeout bounds how long Lock waits for the records' lock. Its
// holders keep it for milliseconds; one that keeps it longer is stuck
// (stopped, or hung in the kernel), and a container's start must fail with
// a reason rather than hang with it.
var LockTimeout = 10 * time.Second

// Lock takes the records' directory lock, waiting at most LockTimeout for
// it, and returns the function that releases it. Everything that changes
// attachments (attach, detach, the daemon's reconcile) holds it, so a
// reconcile never sees an attachment half made by a live process: what it
// finds half made belongs to one that died, and is safe to remove. The
// kernel releases the lock of a process that dies, however it dies.
func Lock(dir string) (unlock func(), err error) {
	return lockWithin(dir, LockTimeout)
}

func lockWithin(dir string, timeout time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	path := filepath.Join(dir, lockName)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("records: lock %s: %w", path, err)
	}
	// Closing the descriptor releases the lock.
	release := func() { unix.Close(fd) }
	// Free (the usual case): no thread, no timer.
	if err := flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil {
		return release, nil
	} else if err != unix.EWOULDBLOCK {
		release()
		return nil, fmt.Errorf("records: lock %s: %w", path, err)
	}
	// Held: wait in a blocking flock on another goroutine, for at most
	// timeout. If we give up first, the waiter releases the lock as soon
	// as it gets it.
	var mu sync.Mutex
	gaveUp := false
	got := make(chan error, 1)
	go func() {
		err := flock(fd, unix.LOCK_EX)
		mu.Lock()
		defer mu.Unlock()
		if gaveUp {
			release()
			return
		}
		got <- err
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			release()
			return nil, fmt.Errorf("records: lock %s: %w", path, err)
		}
		return release, nil
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case err := <-got: // got it just now
		if err == nil {
			return release, nil
		}
		release()
		return nil, fmt.Errorf("records: lock %s: %w", path, err)
	default:
		gaveUp = true
	}
	return nil, fmt.Errorf("records: %s has been locked for over %v by %s: kanto-can changes nothing while another one does (stop or kill that process)",
		path, timeout, holder(path))
}

func flock(fd, how int) error {
	for {
		if err := unix.Flock(fd, how); err != unix.EINTR {
			return err
		}
	}
}

// holder names the process that holds the flock on path, from /proc/locks
// ("another process" when it cannot tell).
func holder(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "another process"
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return "another process"
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 4242 00:1a:12345 0 EOF"
	want := ":" + strconv.FormatUint(st.Ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], want) {
			continue
		}
		pid := fields[4]
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		if name := strings.TrimSpace(string(comm)); name != "" {
			return "pid " + pid + " (" + name + ")"
		}
		return "pid " + pid
	}
	return "another process"
}
