package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The policy in force is logged at start, no file at warn level; each
// change once (edited, removed, broken); CANManager and the metrics carry
// it.
func TestPolicyInForceLoggedOncePerChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	var logs logBuffer
	w := &policyWatch{path: path, log: newLog(&logs)}
	for range 3 {
		if in, err := w.read(); err != nil || in.Present {
			t.Fatalf("no file: %+v, %v", in, err)
		}
	}
	if n := logs.count("level=WARN", "policy: none", "no rate limit", "path="+path); n != 1 {
		t.Errorf("no file: %d warnings, want 1:\n%s", n, logs.String())
	}
	if s := w.status(); s.Present || s.Path != path || s.Error != "" {
		t.Errorf("no file: CANManager %+v", s)
	}

	if err := os.WriteFile(path, []byte(`{"buses": {"can0": {}}, "containers": [{"match": "app", "buses": {"can0": {}}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		w.read()
	}
	if n := logs.count("level=INFO", "msg=policy", "buses=1", "containers=1", "sha256="); n != 1 {
		t.Errorf("a file: %d lines, want 1:\n%s", n, logs.String())
	}
	if s := w.status(); !s.Present || len(s.SHA256) != 64 || s.Buses != 1 || s.Containers != 1 {
		t.Errorf("a file: CANManager %+v", s)
	}

	if err := os.WriteFile(path, []byte(`{"busses": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	w.read()
	if s := w.status(); !s.Present || !strings.Contains(s.Error, "busses") {
		t.Errorf("an invalid file: CANManager %+v", s)
	}
	if n := logs.count("level=ERROR", "policy: cannot be read", "busses"); n != 1 {
		t.Errorf("an invalid file: %d lines, want 1:\n%s", n, logs.String())
	}
	os.Remove(path)
	w.read()
	if n := logs.count("level=WARN", "policy: none"); n != 2 {
		t.Errorf("removed: %d warnings in all, want 2:\n%s", n, logs.String())
	}
}

// The metrics carry the policy: kanto_can_policy_info with its path,
// presence and digest, its entries; an invalid file is a scrape error of
// part policy.
func TestPolicyMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	w := &policyWatch{path: path, log: newLog(&logBuffer{})}
	m := newMetrics(metricsSource{open: openNowhere, names: func() map[string]string { return nil }, policy: w.read})
	fams := scrape(t, m)
	if v, ok := fams.Value("kanto_can_policy_info", map[string]string{"path": path, "present": "false", "sha256": ""}); !ok || v != 1 {
		t.Errorf("no file: policy info %v (%v)", v, ok)
	}
	if v, ok := fams.Value("kanto_can_scrape_error", map[string]string{"part": "policy"}); !ok || v != 0 {
		t.Errorf("no file: policy scrape error %v (%v)", v, ok)
	}
	os.WriteFile(path, []byte(`{"buses": {"can0": {}, "can1": {}}, "default": {"buses": {"can0": {}}}}`), 0o644)
	fams = scrape(t, m)
	in, _ := w.read()
	if v, ok := fams.Value("kanto_can_policy_info", map[string]string{"path": path, "present": "true", "sha256": in.SHA256}); !ok || v != 1 || len(in.SHA256) != 64 {
		t.Errorf("a file: policy info %v (%v)", v, ok)
	}
	for kind, want := range map[string]float64{"buses": 2, "containers": 0, "default": 1} {
		if v, ok := fams.Value("kanto_can_policy_entries", map[string]string{"kind": kind}); !ok || v != want {
			t.Errorf("a file: %s entries %v (%v), want %v", kind, v, ok, want)
		}
	}
	os.WriteFile(path, []byte(`{`), 0o644)
	fams = scrape(t, m)
	if v, ok := fams.Value("kanto_can_scrape_error", map[string]string{"part": "policy"}); !ok || v != 1 {
		t.Errorf("an invalid file: policy scrape error %v (%v)", v, ok)
	}
	if fams["kanto_can_policy_info"] != nil {
		t.Error("an invalid file: policy info served")
	}
}
