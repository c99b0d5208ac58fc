package kerneltest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Environment variables set by make kernel-tests for the guest.
const (
	// EnvGuest is "1" inside the test VM.
	EnvGuest = "KANTO_CAN_GUEST"
	// EnvBinary is the absolute path of the kanto-can binary under test.
	EnvBinary = "KANTO_CAN_BIN"
	// EnvFaultBinary is kanto-can built with fault points armed (build tag
	// faultinject): KANTO_CAN_FAULT=POINT makes it kill itself there.
	EnvFaultBinary = "KANTO_CAN_FAULT_BIN"
)

// Require fails the test unless it runs inside the test VM (KANTO_CAN_GUEST=1).
// Kernel tests create interfaces, namespaces and gateway rules as root: they
// must never run on a development host by accident. It also requires the
// modules every kernel test needs (can, can_raw, can_gw, vxcan; see
// [RequireModules]): a kernel without one skips the test, naming it.
func Require(tb testing.TB) {
	tb.Helper()
	if os.Getenv(EnvGuest) != "1" {
		tb.Fatalf("kernel test outside the test VM: %s is not 1. Run kernel tests with `make kernel-tests` "+
			"(they boot a QEMU guest via test/vm/run.sh), not directly on this machine", EnvGuest)
	}
	requireModules(tb, baseModules...)
}

// Binary returns the path of the kanto-can binary under test ($KANTO_CAN_BIN).
// It fails the test if the variable is unset or the file is not executable.
func Binary(tb testing.TB) string {
	tb.Helper()
	return binaryFrom(tb, EnvBinary)
}

// DaemonBinary returns the path of kanto-can-daemon, built next to the
// kanto-can binary under test.
func DaemonBinary(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(filepath.Dir(binaryFrom(tb, EnvBinary)), "kanto-can-daemon")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("kanto-can-daemon: %v (make build puts it next to kanto-can)", err)
	}
	return p
}

// FaultBinary returns the path of kanto-can with fault points armed
// ($KANTO_CAN_FAULT_BIN; see package internal/fault).
func FaultBinary(tb testing.TB) string {
	tb.Helper()
	return binaryFrom(tb, EnvFaultBinary)
}

func binaryFrom(tb testing.TB, env string) string {
	tb.Helper()
	Require(tb)
	p := os.Getenv(env)
	if p == "" {
		tb.Fatalf("%s is not set: make kernel-tests passes the binaries under test to the guest", env)
	}
	st, err := os.Stat(p)
	if err != nil {
		tb.Fatalf("%s=%s: %v", env, p, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		tb.Fatalf("%s=%s is not an executable file", env, p)
	}
	return p
}

// Run runs a command in the test's own network namespace and returns what it
// printed and its exit status. It fails the test only if the command cannot be
// started at all (not found, killed by a signal): a non-zero exit is a result.
func Run(tb testing.TB, name string, args ...string) (stdout, stderr string, exit int) {
	tb.Helper()
	return runCmd(tb, exec.Command(name, args...))
}

// RunCmd is like [Run] for a prepared command, e.g. from [NS.Command] or
// [NS.Unprivileged]. cmd.Stdout and cmd.Stderr must be unset.
func RunCmd(tb testing.TB, cmd *exec.Cmd) (stdout, stderr string, exit int) {
	tb.Helper()
	return runCmd(tb, cmd)
}

func runCmd(tb testing.TB, cmd *exec.Cmd) (string, string, int) {
	tb.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return out.String(), errb.String(), ee.ExitCode()
	default:
		tb.Fatalf("run %v: %v\nstdout: %s\nstderr: %s", cmd.Args, err, out.String(), errb.String())
		return "", "", -1
	}
}

// MustRun runs a command like [Run] and fails the test if it exits non-zero.
// It returns stdout.
func MustRun(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, errs, code := Run(tb, name, args...)
	if code != 0 {
		tb.Fatalf("%s %v: exit %d\nstdout: %s\nstderr: %s", name, args, code, out, errs)
	}
	return out
}
