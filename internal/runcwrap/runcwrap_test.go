package runcwrap

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args   string
		ns     string
		create bool
		bundle string
		ok     bool
	}{
		{"--root /run/containerd/runc/kanto-cm --log /x/log.json --log-format json create --bundle /b/kanto-cm/app --pid-file /p app", "kanto-cm", true, "/b/kanto-cm/app", true},
		{"--root=/run/containerd/runc/default --systemd-cgroup create -b /b app", "default", true, "/b", true},
		{"-root /r/kanto-cm create --no-pivot --bundle=/bb app", "kanto-cm", true, "/bb", true},
		{"--root /run/containerd/runc/kanto-cm start app", "kanto-cm", false, "", true},
		{"--root /run/containerd/runc/kanto-cm delete --force app", "kanto-cm", false, "", true},
		{"run app", "", true, "", true},
		{"--version", "", false, "", false},
		{"", "", false, "", false},
	} {
		inv, ok := Parse(strings.Fields(tc.args))
		if ok != tc.ok || inv.Namespace() != tc.ns || inv.Create != tc.create || inv.Bundle != tc.bundle {
			t.Errorf("Parse(%q) = %+v ns=%q ok=%v", tc.args, inv, inv.Namespace(), ok)
		}
	}
}

func writeSpec(t *testing.T, spec string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInjectLeavesOthersUntouched(t *testing.T) {
	spec := `{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","OTHER=1"]},  "hooks":{"prestart":[{"path":"/x"}]}}`
	dir := writeSpec(t, spec)
	before, _ := os.Stat(filepath.Join(dir, "config.json"))
	if err := Inject(dir, "/usr/bin/kanto-can"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	after, _ := os.Stat(filepath.Join(dir, "config.json"))
	if string(got) != spec || !os.SameFile(before, after) {
		t.Fatalf("a spec without KANTO_CAN was rewritten: %s", got)
	}
}

func TestInjectAddsHooksOnce(t *testing.T) {
	dir := writeSpec(t, `{"ociVersion":"1.0.2","process":{"env":["KANTO_CAN=can0"]},"hooks":{"prestart":[{"path":"/usr/bin/libnetwork-setkey","args":["setkey"]}]},"linux":{"namespaces":[{"type":"network"}]}}`)
	for i := 0; i < 2; i++ {
		if err := Inject(dir, "/usr/bin/kanto-can"); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var spec struct {
		Hooks map[string][]ociHook `json:"hooks"`
		Linux json.RawMessage      `json:"linux"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	pre, create, post := spec.Hooks["prestart"], spec.Hooks["createRuntime"], spec.Hooks["poststop"]
	if len(pre) != 1 || pre[0].Path != "/usr/bin/libnetwork-setkey" {
		t.Fatalf("prestart hooks %+v: want Kanto's alone", pre)
	}
	if len(create) != 1 || create[0].Path != "/usr/bin/kanto-can" || strings.Join(create[0].Args, " ") != "kanto-can hook createRuntime" {
		t.Fatalf("createRuntime hooks %+v", create)
	}
	if len(post) != 1 || strings.Join(post[0].Args, " ") != "kanto-can hook poststop" {
		t.Fatalf("poststop hooks %+v", post)
	}
	if !bytes.Contains(spec.Linux, []byte(`"network"`)) {
		t.Fatalf("other parts of the spec lost: %s", raw)
	}
}

// A spec with kanto-can's hooks from a manifest (prestart, poststop) gets
// no second pair: the file is not rewritten.
func TestInjectKeepsManifestHooks(t *testing.T) {
	spec := `{"ociVersion":"1.0.2","process":{"env":["KANTO_CAN=can0"]},"hooks":{"prestart":[{"path":"/usr/bin/kanto-can","args":["kanto-can","hook","prestart"]}],"poststop":[{"path":"/usr/bin/kanto-can","args":["kanto-can","hook","poststop"]}]}}`
	dir := writeSpec(t, spec)
	if err := Inject(dir, "/usr/bin/kanto-can"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(got) != spec {
		t.Fatalf("rewritten: %s", got)
	}
}

func TestFindRuncNeverSelf(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "kanto-can")
	os.WriteFile(self, []byte("#!/bin/sh\n"), 0o755)
	wrap := filepath.Join(dir, "wrap")
	os.Mkdir(wrap, 0o755)
	os.Symlink(self, filepath.Join(wrap, "runc")) // the wrapper itself
	realDir := filepath.Join(dir, "real")
	os.Mkdir(realDir, 0o755)
	real := filepath.Join(realDir, "runc")
	os.WriteFile(real, []byte("#!/bin/sh\n"), 0o755)
	got, err := FindRunc(self, "", wrap+":"+realDir)
	if err != nil || got != real {
		t.Fatalf("FindRunc = %q, %v; want %q", got, err, real)
	}
	if _, err := FindRunc(self, filepath.Join(wrap, "runc"), ""); err == nil {
		t.Fatal("an explicit runc that is kanto-can itself was accepted")
	}
}

func TestCalledAsRuntime(t *testing.T) {
	for _, tc := range []struct {
		args string
		want bool
	}{
		// Docker 20.10's shim, as seen in the guest.
		{"--root /var/run/docker/runtime-runc/moby --log /run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/abc/log.json --log-format json create --bundle /b --pid-file /p abc", true},
		{"--root=/run/runc --systemd-cgroup create --bundle /b x", true},
		{"--systemd-cgroup --root /run/runc start x", true},
		{"-log /l delete x", true},
		{"--debug state x", true},
		{"hook prestart", false},
		{"attach app --bus can0", false},
		{"--config /etc/kanto-can/config.json ls", false},
		{"--help", false},
		{"", false},
	} {
		if got := CalledAsRuntime(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("CalledAsRuntime(%q) = %v", tc.args, got)
		}
	}
}

func TestServes(t *testing.T) {
	t.Setenv(EnvNamespaces, "")
	if !serves("kanto-cm", false) || serves("moby", false) || serves("", false) {
		t.Error("as runc: want kanto-cm only")
	}
	if !serves("moby", true) || !serves("", true) {
		t.Error("as a runtime: want every namespace")
	}
	t.Setenv(EnvNamespaces, "moby")
	if !serves("moby", true) || serves("kanto-cm", true) || serves("kanto-cm", false) {
		t.Errorf("%s=moby: want moby only", EnvNamespaces)
	}
}
