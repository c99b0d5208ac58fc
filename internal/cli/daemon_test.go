package cli

import (
	"slices"
	"testing"
)

// The global --config reaches the daemon (it used to be dropped: the root
// parses it before `daemon`, whose flags go to kanto-can-daemon as they
// are).
func TestDaemonArgsPassTheGlobalConfig(t *testing.T) {
	for _, tc := range []struct {
		given bool
		args  []string
		want  []string
	}{
		{false, []string{"--ditto"}, []string{"--ditto"}},
		{true, []string{"--ditto"}, []string{"--config", "/p.json", "--ditto"}},
		{true, nil, []string{"--config", "/p.json"}},
	} {
		if got := daemonArgs("/p.json", tc.given, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("daemonArgs(given %v, %q) = %q, want %q", tc.given, tc.args, got, tc.want)
		}
	}
}
