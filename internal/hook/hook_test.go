package hook

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
)

func TestPhaseOf(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         Phase
		err          string
	}{
		{"prestart", "", Attach, ""},
		{"createRuntime", "creating", Attach, ""},
		{"poststop", "stopped", Detach, ""},
		{"", "creating", Attach, ""},
		{"", "stopped", Detach, ""},
		{"", "running", "", "name the hook"},
		{"poststart", "", "", "hook poststart runs after the entrypoint started: use createRuntime"},
		// Run inside the container's namespaces: it used to exit 0 and
		// attach nothing.
		{"createContainer", "created", "", "hook createContainer runs inside the container's namespaces"},
		{"startContainer", "created", "", "hook startContainer runs inside the container's namespaces"},
		{"attach", "", "", `hook "attach": want prestart, createRuntime or poststop`},
	} {
		got, err := PhaseOf(tc.name, State{Status: tc.status})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("PhaseOf(%q, %q) error %v, want %q", tc.name, tc.status, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("PhaseOf(%q, %q) = %v, %v", tc.name, tc.status, got, err)
		}
	}
}

func TestReadState(t *testing.T) {
	st, err := ReadState(strings.NewReader(`{"ociVersion":"1.0.2","id":"app","status":"creating","pid":42,"bundle":"/b"}`))
	if err != nil || st.ID != "app" || st.Pid != 42 || st.Bundle != "/b" {
		t.Fatalf("ReadState = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "{", `{"pid":1}`} {
		if _, err := ReadState(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadState(%q) accepted", bad)
		}
	}
}

func TestEnvRequestAndRequest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["PATH=/bin","KANTO_CAN=can0;vcan1:can1,dir=rx,optional"]}}`), 0o600)
	env, err := EnvRequest(dir)
	if err != nil || env != "can0;vcan1:can1,dir=rx,optional" {
		t.Fatalf("EnvRequest = %q, %v", env, err)
	}
	buses, err := Request([]string{"can2:can9"}, Ask{Value: env, From: EnvVar})
	if err != nil || len(buses) != 3 || buses[0].Host != "can2" || !buses[2].Optional {
		t.Fatalf("Request = %+v, %v", buses, err)
	}
	if _, err := Request(nil, Ask{From: EnvVar}); err == nil || !strings.Contains(err.Error(), "no bus requested") {
		t.Errorf("empty request: %v", err)
	}
	if _, err := Request(nil, Ask{Value: "can0,rx=800", From: EnvVar}); err == nil || !strings.Contains(err.Error(), "KANTO_CAN: bus 1:") {
		t.Errorf("malformed KANTO_CAN: %v", err)
	}
	if _, err := Request([]string{"can0"}, Ask{Value: "can0:x", From: EnvVar}); err == nil || !strings.Contains(err.Error(), "requested twice") {
		t.Errorf("duplicate bus: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["PATH=/bin"]}}`), 0o600)
	if env, err := EnvRequest(dir); err != nil || env != "" {
		t.Errorf("no KANTO_CAN: %q, %v", env, err)
	}
}

func TestInitialUserNS(t *testing.T) {
	for _, tc := range []struct {
		uidMap  string
		outside int64
		initial bool
	}{
		{"         0          0 4294967295\n", 0, true},
		// rootless podman: root of the user namespace is the user 1000,
		// the rest comes from /etc/subuid.
		{"         0       1000          1\n         1     100000      65536\n", 1000, false},
		{"0 100000 65536", 100000, false},
		{"1000 1000 1", -1, false},
		{"0 0 4294967294", 0, false},
		{"", -1, false},
	} {
		outside, initial := InitialUserNS(tc.uidMap)
		if initial != tc.initial || outside != tc.outside {
			t.Errorf("InitialUserNS(%q) = outside %d, initial %v; want %d, %v", tc.uidMap, outside, initial, tc.outside, tc.initial)
		}
	}
}

func TestRootlessRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["KANTO_CAN=can0"]}}`), 0o600)
	st := State{ID: "app", Status: "creating", Pid: 1, Bundle: dir}
	resolve := func(names []string, req []request.Bus) (policy.Granted, error) {
		t.Fatal("a rootless request reached the policy")
		return policy.Granted{}, nil
	}
	rootless := "0 1000 1\n1 100000 65536\n"
	err := Run(Attach, st, Options{UIDMap: rootless}, []string{"app"}, resolve, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "uid 0 here is uid 1000 of the host") ||
		!strings.Contains(err.Error(), "rootless podman or Docker") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("rootless attach: %v", err)
	}
	// A container that asks for nothing is left alone, rootless or not.
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["PATH=/bin"]}}`), 0o600)
	if err := Run(Attach, st, Options{UIDMap: rootless, IfRequested: true}, []string{"app"}, resolve, io.Discard); err != nil {
		t.Fatalf("rootless, nothing asked, --if-requested: %v", err)
	}
	// poststop under a rootless engine: nothing can be ours, exit 0.
	if err := Run(Detach, st, Options{UIDMap: rootless}, []string{"app"}, resolve, io.Discard); err != nil {
		t.Fatalf("rootless poststop: %v", err)
	}
}

func TestIfRequested(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["PATH=/bin"]}}`), 0o600)
	st := State{ID: "app", Status: "creating", Pid: 1, Bundle: dir}
	resolve := func(names []string, req []request.Bus) (policy.Granted, error) {
		return policy.Granted{}, errors.New("policy reached")
	}
	initial := "0 0 4294967295\n"
	if err := Run(Attach, st, Options{UIDMap: initial, IfRequested: true}, []string{"app"}, resolve, io.Discard); err != nil {
		t.Fatalf("nothing asked, --if-requested: %v", err)
	}
	if err := Run(Detach, st, Options{UIDMap: initial, IfRequested: true}, []string{"app"}, resolve, io.Discard); err != nil {
		t.Fatalf("nothing asked, --if-requested, poststop: %v", err)
	}
	// Without --if-requested, asking for nothing is an error.
	if err := Run(Attach, st, Options{UIDMap: initial}, []string{"app"}, resolve, io.Discard); err == nil || !strings.Contains(err.Error(), "no bus requested") {
		t.Fatalf("nothing asked: %v", err)
	}
	// The annotation is a request: it reaches the policy.
	st.Annotations = map[string]string{Annotation: "can0"}
	if err := Run(Attach, st, Options{UIDMap: initial, IfRequested: true}, []string{"app"}, resolve, io.Discard); err == nil || err.Error() != "policy reached" {
		t.Fatalf("annotated, --if-requested: %v", err)
	}
}

func TestAnnotationRequest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["KANTO_CAN=can1"]}}`), 0o600)
	st := State{ID: "app", Bundle: dir, Annotations: map[string]string{Annotation: "can0,rx=7E8;vcan0,optional", "other": "x"}}
	ask, err := ContainerAsk(st)
	if err != nil || ask.Value != "can0,rx=7E8;vcan0,optional" || ask.From != "annotation io.kanto-can.buses" {
		t.Fatalf("ContainerAsk = %+v, %v", ask, err)
	}
	buses, err := Request(nil, ask)
	if err != nil || len(buses) != 2 || buses[0].Host != "can0" || !buses[1].Optional {
		t.Fatalf("Request = %+v, %v", buses, err)
	}
	// Blank: KANTO_CAN is the request.
	st.Annotations[Annotation] = " "
	if ask, err := ContainerAsk(st); err != nil || ask.Value != "can1" || ask.From != EnvVar {
		t.Fatalf("blank annotation: %+v, %v", ask, err)
	}
	// Malformed: the error names the annotation.
	st.Annotations[Annotation] = "can0,dir=up"
	ask, _ = ContainerAsk(st)
	if _, err := Request(nil, ask); err == nil || !strings.HasPrefix(err.Error(), "annotation io.kanto-can.buses: bus 1:") {
		t.Fatalf("malformed annotation: %v", err)
	}
	// podman split "can0,rx=7E8" at the comma: refused, not widened.
	st.Annotations = map[string]string{Annotation: "can0", "rx": "7E8"}
	if _, err := ContainerAsk(st); err == nil || !strings.Contains(err.Error(), `annotation io.kanto-can.buses: is "can0" and the container also has the annotation rx=7E8`) ||
		!strings.Contains(err.Error(), `--annotation '"io.kanto-can.buses=can0,rx=7E8"'`) {
		t.Fatalf("split annotation: %v", err)
	}
	// No bundle, annotation given: the bundle is not needed.
	st = State{ID: "app", Bundle: filepath.Join(dir, "gone"), Annotations: map[string]string{Annotation: "can0"}}
	if ask, err := ContainerAsk(st); err != nil || ask.Value != "can0" {
		t.Fatalf("annotation without a bundle: %+v, %v", ask, err)
	}
}
