package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/policy"
)

// status says which policy is in force: none and what that allows, the
// file and its entries, or why the file cannot be used.
func TestStatusPolicy(t *testing.T) {
	dir := t.TempDir()
	good, bad, absent := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json"), filepath.Join(dir, "absent.json")
	os.WriteFile(good, []byte(`{"buses":{"can0":{},"can1":{}},"containers":[{"match":"app","buses":{"can0":{}}}],"default":{"buses":{"can1":{"dir":"rx"}}}}`), 0o644)
	os.WriteFile(bad, []byte(`{"buses":{"can0":{"speed":1}}}`), 0o644)
	for _, tc := range []struct {
		path     string
		explicit bool
		present  bool
		line     string // the table's policy line starts with it
		err      string
	}{
		{absent, false, false, "policy: none (no " + absent + "): any container may use any bus, both ways, every id, no rate limit", ""},
		{absent, true, false, "policy: unusable, every attach fails: policy: open " + absent, "no such file"},
		{good, false, true, "policy: " + good + " (sha256 ", ""},
		{bad, false, true, "policy: unusable, every attach fails: policy: " + bad + ": buses.can0", "speed"},
	} {
		p := policyInForce(tc.path, tc.explicit)
		var b bytes.Buffer
		printStatus(&b, statusView{Policy: p})
		line, rest, _ := strings.Cut(b.String(), "\n")
		if !strings.Contains(rest, "(no bus has attachments)") {
			t.Errorf("no buses:\n%s", b.String())
		}
		if !strings.HasPrefix(line, tc.line) || p.Present != tc.present || !strings.Contains(p.Error, tc.err) || (tc.err == "") != (p.Error == "") {
			t.Errorf("%s (explicit %v): %q, %+v; want a line starting %q, present %v, error with %q", tc.path, tc.explicit, line, p, tc.line, tc.present, tc.err)
		}
	}
	if p := policyInForce(good, true); p.Buses != 2 || p.Containers != 1 || !p.Default || len(p.SHA256) != 64 ||
		!strings.HasSuffix(p.Summary, "2 buses, 1 container entry, a default for containers no entry matches") {
		t.Errorf("good: %+v", p)
	}
}

// A file this user cannot read is not said to fail every attach: root's
// attach may read it.
func TestStatusPolicyUnreadable(t *testing.T) {
	err := fmt.Errorf("policy: %w", &fs.PathError{Op: "open", Path: "/etc/kanto-can/config.json", Err: fs.ErrPermission})
	// As policy.Describe gives it for a file that exists.
	p := describePolicy(policy.InForce{Path: "/etc/kanto-can/config.json", Present: true}, err)
	if !p.Present || p.Error == "" || !strings.HasPrefix(p.Summary, "not readable by this user: policy: open /etc/kanto-can/config.json") {
		t.Errorf("%+v", p)
	}
}
