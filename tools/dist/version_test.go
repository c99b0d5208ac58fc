package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	at := time.Date(2026, 12, 6, 14, 30, 5, 0, time.UTC)
	for _, c := range []struct {
		tag          string
		exact, dirty bool
		want         string
	}{
		{"", false, false, "0.0.0~git20261206143005.abcdef0"},
		{"", false, true, "0.0.0~git20261206143005.abcdef0.dirty"},
		{"v1.2.3", true, false, "1.2.3"},
		{"v1.2.3", false, false, "1.2.3+git20261206143005.abcdef0"},
		{"v1.2.3", false, true, "1.2.3+git20261206143005.abcdef0.dirty"},
		{"v1.2.3-rc.1", true, false, "1.2.3~rc.1"},
		{"v1.2.3-rc.1", false, false, "1.2.3~rc.1+git20261206143005.abcdef0"},
	} {
		got, err := version(c.tag, c.exact, at, "abcdef0", c.dirty)
		if err != nil || got != c.want {
			t.Errorf("version(%q, exact %v, dirty %v) = %q, %v; want %q", c.tag, c.exact, c.dirty, got, err, c.want)
		}
	}
	for _, tag := range []string{"v1.2", "1.2.3", "v1.2.3+meta", "v01.2.3", "v1.2.3-rc-1"} {
		if got, err := version(tag, true, at, "abcdef0", false); err == nil {
			t.Errorf("tag %q: %q, want an error", tag, got)
		}
	}
}

// Debian must sort the versions the way the commits go (dpkg decides).
func TestVersionsSortAsReleases(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("no dpkg to compare versions with")
	}
	inOrder := []string{
		"0.0.0~git20261206143005.abcdef0",
		"0.0.0~git20261206143006.0123456",
		"1.0.0~rc.1",
		"1.0.0~rc.1+git20261207000000.1111111",
		"1.0.0",
		"1.0.0+git20261208000000.2222222",
		"1.0.1",
	}
	for i := 1; i < len(inOrder); i++ {
		if err := exec.Command("dpkg", "--compare-versions", inOrder[i-1], "lt", inOrder[i]).Run(); err != nil {
			t.Errorf("dpkg: %s is not before %s", inOrder[i-1], inOrder[i])
		}
	}
}

// gitRelease on a repository of its own: no tag, a tag, a commit after it,
// a change not committed.
func TestGitRelease(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@example.org",
			"GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@example.org",
			"GIT_COMMITTER_DATE=2026-12-06T10:00:00Z", "GIT_AUTHOR_DATE=2026-12-06T10:00:00Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what, wantPattern string) {
		t.Helper()
		rel, err := gitRelease(dir)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !matches(wantPattern, rel.Version) {
			t.Errorf("%s: version %q, want %s", what, rel.Version, wantPattern)
		}
		if want := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC); !rel.Time.Equal(want) {
			t.Errorf("%s: time %v, want the commit's, %v", what, rel.Time, want)
		}
	}
	git("init", "-q")
	write("1")
	git("add", "f")
	git("commit", "-qm", "one")
	check("no tag", "0.0.0~git20261206100000.HASH")
	git("tag", "v0.1.0")
	check("tagged", "0.1.0")
	write("2")
	check("tagged, changed", "0.1.0+git20261206100000.HASH.dirty")
	git("commit", "-qam", "two")
	check("after the tag", "0.1.0+git20261206100000.HASH")
	// Untracked files do not make a tree dirty (git describe --dirty).
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check("untracked file", "0.1.0+git20261206100000.HASH")
}

// matches compares with HASH standing for 7 hex digits.
func matches(pattern, s string) bool {
	i := strings.Index(pattern, "HASH")
	if i < 0 {
		return pattern == s
	}
	if len(s) < i+7 || s[:i] != pattern[:i] {
		return false
	}
	for _, c := range s[i : i+7] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return s[i+7:] == pattern[i+4:]
}

// dist version (what make build stamps into the binaries) prints the
// release's version of the checkout, as make dist names the artifacts.
func TestRunVersion(t *testing.T) {
	rel, err := gitRelease("../..")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"version", "-src", "../.."}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != rel.Version+"\n" {
		t.Fatalf("dist version printed %q, want %q", out.String(), rel.Version+"\n")
	}
}
