package hook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	buses, err := Request([]string{"can2:can9"}, env)
	if err != nil || len(buses) != 3 || buses[0].Host != "can2" || !buses[2].Optional {
		t.Fatalf("Request = %+v, %v", buses, err)
	}
	if _, err := Request(nil, ""); err == nil || !strings.Contains(err.Error(), "no bus requested") {
		t.Errorf("empty request: %v", err)
	}
	if _, err := Request(nil, "can0,rx=800"); err == nil || !strings.Contains(err.Error(), "KANTO_CAN: bus 1:") {
		t.Errorf("malformed KANTO_CAN: %v", err)
	}
	if _, err := Request([]string{"can0"}, "can0:x"); err == nil || !strings.Contains(err.Error(), "requested twice") {
		t.Errorf("duplicate bus: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"env":["PATH=/bin"]}}`), 0o600)
	if env, err := EnvRequest(dir); err != nil || env != "" {
		t.Errorf("no KANTO_CAN: %q, %v", env, err)
	}
}
