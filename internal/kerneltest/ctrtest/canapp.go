package ctrtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// EnvCanapp names the static canapp binary (test/canapp) for the images of
// kernel tests: Go is not at hand in the guest, so make kernel-tests builds
// it (CGO_ENABLED=0, out/bin/canapp) and passes its absolute path.
const EnvCanapp = "KANTO_CAN_CANAPP"

// CanappPath returns the canapp binary to copy into an image
// ($KANTO_CAN_CANAPP), failing the test if it is unset or not executable.
func CanappPath(tb testing.TB) string {
	tb.Helper()
	kerneltest.Require(tb)
	p := os.Getenv(EnvCanapp)
	if p == "" || !filepath.IsAbs(p) {
		tb.Fatalf("%s=%q: want the absolute path of a static canapp binary "+
			"(make kernel-tests builds test/canapp and passes it)", EnvCanapp, p)
	}
	st, err := os.Stat(p)
	if err != nil {
		tb.Fatalf("%s: %v", EnvCanapp, err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		tb.Fatalf("%s=%s is not an executable file", EnvCanapp, p)
	}
	return p
}
