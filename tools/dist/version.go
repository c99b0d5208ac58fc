package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// release is what one commit of the source is released as.
type release struct {
	// Version is the version of the binaries and of the packages' upstream
	// part: a valid Debian version that sorts the way the commits do.
	Version string
	// Time is the commit's time: SOURCE_DATE_EPOCH, every mtime in the
	// archives, the changelog's date.
	Time time.Time
	// Commit is the abbreviated commit id.
	Commit string
}

// gitRelease derives the release from the git checkout at dir:
//
//   - HEAD is tagged vX.Y.Z[-PRE] and the tree is clean: X.Y.Z[~PRE];
//   - after such a tag: X.Y.Z[~PRE]+gitYYYYMMDDhhmmss.HASH (after the tag,
//     before the next);
//   - no tag: 0.0.0~gitYYYYMMDDhhmmss.HASH;
//   - tracked files changed: the same with .dirty appended.
//
// The date is the commit's, in UTC, so later commits sort later.
func gitRelease(dir string) (release, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
			}
			return "", fmt.Errorf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	line, err := git("log", "-1", "--format=%ct %h", "--abbrev=7")
	if err != nil {
		return release{}, err
	}
	var epoch int64
	var commit string
	if _, err := fmt.Sscanf(line, "%d %s", &epoch, &commit); err != nil {
		return release{}, fmt.Errorf("git log: %q: %v", line, err)
	}
	// The nearest tag and how far HEAD is from it; none is not an error.
	tag, exact := "", false
	if d, err := git("describe", "--tags", "--long", "--match", "v[0-9]*", "HEAD"); err == nil {
		t, n, ok := parseDescribe(d)
		if !ok {
			return release{}, fmt.Errorf("git describe: %q: not TAG-N-gHASH", d)
		}
		tag, exact = t, n == 0
	}
	// Like git describe --dirty: tracked files only.
	dirty := false
	if _, err := git("update-index", "-q", "--refresh"); err != nil {
		return release{}, err
	}
	if _, err := git("diff-index", "--quiet", "HEAD", "--"); err != nil {
		dirty = true
	}
	t := time.Unix(epoch, 0).UTC()
	v, err := version(tag, exact && !dirty, t, commit, dirty)
	if err != nil {
		return release{}, err
	}
	return release{Version: v, Time: t, Commit: commit}, nil
}

// parseDescribe splits git describe --long's TAG-N-gHASH.
func parseDescribe(d string) (tag string, n int, ok bool) {
	i := strings.LastIndex(d, "-g")
	if i < 0 {
		return "", 0, false
	}
	j := strings.LastIndex(d[:i], "-")
	if j < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(d[j+1 : i])
	if err != nil {
		return "", 0, false
	}
	return d[:j], n, true
}

// version is gitRelease's rule (see there) on its parts; tag may be "".
func version(tag string, exact bool, t time.Time, commit string, dirty bool) (string, error) {
	base := "0.0.0"
	sep := "~" // before 0.0.0: no release yet
	if tag != "" {
		if !semver.IsValid(tag) || semver.Canonical(tag) != strings.TrimSuffix(tag, semver.Build(tag)) {
			return "", fmt.Errorf("tag %s is not a semantic version vX.Y.Z[-PRE]", tag)
		}
		if semver.Build(tag) != "" {
			return "", fmt.Errorf("tag %s: build metadata (+...) has no place in a release tag", tag)
		}
		base = strings.TrimPrefix(tag, "v")
		// Debian sorts ~ before anything: 1.2.3~rc.1 < 1.2.3, as in semver.
		base = strings.Replace(base, "-", "~", 1)
		sep = "+" // after the tag
	}
	v := base
	if !exact || tag == "" {
		v = fmt.Sprintf("%s%sgit%s.%s", base, sep, t.UTC().Format("20060102150405"), commit)
		if dirty {
			v += ".dirty"
		}
	}
	if !debianVersion.MatchString(v) {
		return "", fmt.Errorf("%q is not a valid Debian version", v)
	}
	return v, nil
}

// An upstream version without epoch or revision (Debian Policy 5.6.12).
var debianVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
