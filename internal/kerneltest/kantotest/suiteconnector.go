package kantotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// Who suite-connector says the device is: the thing id the features are
// published for is "org.example:gw1", in tenant "t1".
const (
	DeviceID = "org.example:gw1"
	TenantID = "t1"
)

// SuiteConnector is Kanto's suite-connector started by a test between a
// local broker and a hub broker (a plain mosquitto where Eclipse Hono's
// MQTT adapter would be), as device [DeviceID] of tenant [TenantID].
type SuiteConnector struct {
	// Log has its log lines (it logs to stderr).
	Log  *kerneltest.Lines
	args []string
	wait time.Duration
	cmd  *exec.Cmd
}

// StartSuiteConnector runs suite-connector (from the directory in
// [EnvDir]) until the test ends and returns once it has connected to
// both brokers (localURL, hubURL). wait bounds that.
//
// Its reconnect to a lost hub starts after 1 s and backs off to 2 s
// (HUB_CONNECT_INIT, HUB_CONNECT_MAX); its own default is a minute, up
// to four, which a test would only wait out.
func StartSuiteConnector(tb testing.TB, localURL, hubURL string, wait time.Duration) *SuiteConnector {
	tb.Helper()
	kerneltest.Require(tb)
	dir := os.Getenv(EnvDir)
	if dir == "" {
		tb.Fatalf("%s is not set: make passes the directory of Kanto's binaries (.cache/kanto, made by make setup) to the guest", EnvDir)
	}
	bin := filepath.Join(dir, "suite-connector")
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("suite-connector: %v (make setup unpacks it)", err)
	}
	s := &SuiteConnector{
		Log: kerneltest.NewLines(),
		// -logFile "": to stderr. -caCert: a plain tcp:// hub needs none,
		// but the default file must not be missing.
		args: []string{bin, "-address", hubURL, "-localAddress", localURL, "-deviceId", DeviceID, "-tenantId", TenantID,
			"-username", "u", "-password", "p", "-logFile", "", "-caCert", "/dev/null"},
		wait: wait,
	}
	s.Start(tb)
	tb.Cleanup(func() {
		s.Kill()
		if tb.Failed() {
			tb.Logf("suite-connector's log:\n%s", s.Log.Text())
		}
	})
	return s
}

// Start runs suite-connector (again, after Stop or Kill) and returns once
// it has told the local broker that the hub is connected and who the
// device is.
func (s *SuiteConnector) Start(tb testing.TB) {
	tb.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Env = append(os.Environ(), "HUB_CONNECT_INIT=1", "HUB_CONNECT_MAX=2")
	kerneltest.StartLogged(tb, s.cmd, s.Log, s.wait, func(l string) bool { return strings.Contains(l, "Config parameters") })
}

// Stop stops suite-connector as systemd does (SIGTERM) and waits for its
// end: it tells the local broker first that the hub is gone.
func (s *SuiteConnector) Stop() { s.end(syscall.SIGTERM) }

// Kill kills suite-connector (SIGKILL: a crash) and waits for its end.
func (s *SuiteConnector) Kill() { s.end(syscall.SIGKILL) }

func (s *SuiteConnector) end(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
		s.cmd.Wait()
		s.cmd = nil
	}
}
