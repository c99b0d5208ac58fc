package target

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	const line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615\n"
	start, err := parseStat([]byte(line))
	if err != nil || start != 98765 {
		t.Fatalf("parseStat = %d, %v; want 98765", start, err)
	}
	zombie := "1234 (x) Z 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 0 0\n"
	if _, err := parseStat([]byte(zombie)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("zombie: err = %v, want os.ErrNotExist", err)
	}
	if _, err := parseStat([]byte("1234 (x) S 1 2")); err == nil {
		t.Fatal("short line: no error")
	}
}

// A process's start time, read from two threads, is the same; exited (a
// zombie) and reaped, the process is gone. The process is a child, not
// this one: under qemu-user (make unit's arm runs) /proc/SELF/stat is the
// emulator's, whose start time is the reading thread's.
func TestProcessStart(t *testing.T) {
	cmd := exec.Command("cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	a, err := ProcessStart(pid)
	if err != nil || a == 0 {
		t.Fatalf("ProcessStart(child) = %d, %v", a, err)
	}
	got := make(chan uint64)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		b, _ := ProcessStart(pid)
		got <- b
	}()
	if b := <-got; b != a {
		t.Fatalf("start time changed: %d then %d on another thread", a, b)
	}
	stdin.Close()
	// Exited, not yet reaped.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ProcessStart(pid); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a zombie: err = %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ProcessStart(pid); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reaped: err = %v", err)
	}
	if _, err := ProcessStart(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no such pid: err = %v", err)
	}
}
