package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	kversion "github.com/kanto-can/kanto-can/internal/version"
)

// The test binary runs main when asked to, so the tests below see the
// plugin as a runtime or a person would: a process, its output, its exit.
func TestMain(m *testing.M) {
	if os.Getenv("KANTO_CAN_CNI_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runPlugin(t *testing.T, env []string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append(env, "KANTO_CAN_CNI_RUN_MAIN=1")...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if errors.Is(err, syscall.ENOEXEC) {
		// Cross-built and run by qemu-user (make unit-arm): without
		// binfmt_misc the kernel cannot run the test binary again.
		t.Skipf("re-running the test binary: %v (emulated without binfmt_misc)", err)
	}
	if err != nil {
		t.Fatalf("%v: %v (stderr %q)", args, err, errOut.String())
	}
	return out.String(), errOut.String()
}

func TestVersionFlag(t *testing.T) {
	out, _ := runPlugin(t, nil, "--version")
	if want := "kanto-can-cni version " + kversion.Version() + "\n"; out != want {
		t.Fatalf("--version printed %q, want %q", out, want)
	}
}

// CNI's own VERSION command still answers in JSON, whatever the arguments.
func TestCNIVersionCommand(t *testing.T) {
	out, _ := runPlugin(t, []string{"CNI_COMMAND=VERSION"})
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("VERSION printed %q: %v", out, err)
	}
	if !strings.Contains(strings.Join(v.SupportedVersions, " "), "1.0.0") {
		t.Fatalf("VERSION: supported %v, want 1.0.0 among them", v.SupportedVersions)
	}
}
