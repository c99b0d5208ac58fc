package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, c := range []struct {
		name     string
		version  string
		settings map[string]string
		want     string
	}{
		{"tagged module", "v1.2.3", nil, "v1.2.3"},
		{"revision", "(devel)", map[string]string{"vcs.revision": "0123456789abcdef0123"}, "0123456789ab"},
		{"modified", "(devel)", map[string]string{"vcs.revision": "0123456789abcdef", "vcs.modified": "true"}, "0123456789ab-dirty"},
		{"short revision", "", map[string]string{"vcs.revision": "abc"}, "abc"},
		{"nothing", "(devel)", nil, "devel"},
	} {
		bi := &debug.BuildInfo{Main: debug.Module{Version: c.version}}
		for k, v := range c.settings {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
		}
		if got := fromBuildInfo(bi); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if Version() == "" {
		t.Error("Version is empty")
	}
}

// What the build set wins over the build info.
func TestVersionSetAtBuild(t *testing.T) {
	defer func(was string) { built = was }(built)
	built = "v1.2.3-4-gabcdef"
	if got := Version(); got != "v1.2.3-4-gabcdef" {
		t.Fatalf("Version() = %q, want what the build set", got)
	}
}
