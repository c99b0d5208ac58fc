// Package version says which kanto-can this binary is: what the build set
// (make build and make dist: the release version from git, see tools/dist),
// else the module's version when it was built from a tagged module, else
// the short VCS revision it was built from, else "devel".
package version

import "runtime/debug"

// built is set at build time: -ldflags "-X .../internal/version.built=V".
var built string

// Version returns the binary's version (see the package doc).
func Version() string {
	if built != "" {
		return built
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
