// Package enginetest starts podman and Docker (Debian's podman 4.3 and
// docker.io 20.10) in the test guest, as their users would run them, with
// their state on the guest's tmpfs, and loads a test image into them
// without a registry (see docs/testing.md). Kernel tests only.
package enginetest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
)

// ImageRef is the test image (busybox and canapp) in both engines.
const ImageRef = "docker.io/kanto-can/app:1"

// Wait bounds one engine operation: container starts take seconds under
// emulation. A bound, not a sleep.
const Wait = 90 * time.Second

// imageFiles are the test image's files: busybox and canapp.
func imageFiles(tb testing.TB) map[string]string {
	return map[string]string{
		"/bin/busybox": "/bin/busybox",
		"/bin/canapp":  ctrtest.CanappPath(tb),
	}
}

// RequireRefused fails the test unless an engine's command failed (code
// not 0) with every one of want in its output out, and nothing of ours is
// left; it logs what the engine said.
func RequireRefused(tb testing.TB, engine, out string, code int, want ...string) {
	tb.Helper()
	ok := code != 0
	for _, w := range want {
		ok = ok && strings.Contains(out, w)
	}
	if !ok {
		tb.Fatalf("exit %d, want non-zero and %q in:\n%s", code, want, out)
	}
	tb.Logf("%s said: %s", engine, strings.TrimSpace(out))
	leftover.RequireNone(tb, record.DefaultDir)
}

// Policy writes the admin's policy to its default path for the rest of
// the test (runtimes' injected hooks and hooks.d entries read it there);
// the guest's /etc is a tmpfs overlay, so nothing outlives the guest.
func Policy(tb testing.TB, json string) {
	tb.Helper()
	const dir, file = "/etc/kanto-can", "/etc/kanto-can/config.json"
	if _, err := os.Stat(file); err == nil {
		tb.Fatalf("%s exists already: this test writes its own", file)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(json), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(file) })
}

// Proc is an engine's client command (podman run, docker run) whose output
// is read line by line as it comes.
type Proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	lines chan string
	done  chan struct{}
	code  int
}

// Start starts the command with stdout and stderr merged.
func Start(tb testing.TB, name string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{cmd: exec.Command(name, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() {
		err := p.cmd.Wait()
		w.Close()
		p.code = p.cmd.ProcessState.ExitCode()
		_ = err
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Output is everything printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitLine waits for a line that contains s.
func (p *Proc) WaitLine(tb testing.TB, s string, timeout time.Duration) {
	tb.Helper()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				tb.Fatalf("%s exited %d before printing %q:\n%s", p.cmd.Args[0], p.code, s, p.Output())
			}
			if strings.Contains(l, s) {
				return
			}
		case <-t.C:
			tb.Fatalf("%s printed no %q within %s:\n%s", p.cmd.Args[0], s, timeout, p.Output())
		}
	}
}

// Wait waits for the command's exit and returns its status.
func (p *Proc) Wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		tb.Fatalf("%v still running after %s:\n%s", p.cmd.Args, timeout, p.Output())
		return -1
	}
}

// writeImage writes an image archive into dir and returns its path.
func writeImage(tb testing.TB, dir, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}
