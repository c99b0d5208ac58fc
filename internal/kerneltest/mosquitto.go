package kerneltest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mosquittoBin is where Debian installs the broker.
const mosquittoBin = "/usr/sbin/mosquitto"

// Mosquitto is Debian's MQTT broker started by a test, as Kanto's local
// broker: 127.0.0.1 and a port of its own, anonymous, no persistence,
// every event logged to Log (a witness: who connected, subscribed and
// published what).
type Mosquitto struct {
	Port int
	Log  *Lines
	conf string
	wait time.Duration
	cmd  *exec.Cmd
}

// StartMosquitto starts mosquitto on port (0: a free one) and returns once
// it listens; it is killed when the test ends. wait bounds its start.
func StartMosquitto(tb testing.TB, port int, wait time.Duration) *Mosquitto {
	tb.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		tb.Skipf("no mosquitto (make setup installs it): %v", err)
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nlog_dest stderr\nlog_type all\nlog_timestamp false\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	m := &Mosquitto{Port: port, Log: NewLines(), conf: conf, wait: wait}
	m.Start(tb)
	tb.Cleanup(m.Stop)
	return m
}

// URL is the broker's address for MQTT clients.
func (m *Mosquitto) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.Port) }

// Start runs mosquitto (again, after Stop) and waits until it listens:
// it says it opens the socket, then that it runs.
func (m *Mosquitto) Start(tb testing.TB) {
	tb.Helper()
	m.cmd = exec.Command(mosquittoBin, "-c", m.conf)
	StartLogged(tb, m.cmd, m.Log, m.wait, func(l string) bool { return strings.Contains(l, " running") })
}

// StartLogged starts cmd with each line of its stderr (unbuffered, where
// stdout would come in blocks) added to log, Exited after the last,
// and waits within wait for a line that ready accepts. It fails the test
// if cmd exits first.
func StartLogged(tb testing.TB, cmd *exec.Cmd, log *Lines, wait time.Duration, ready func(string) bool) {
	tb.Helper()
	out, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", cmd.Path, err)
	}
	from := log.Len()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.Add(sc.Text())
		}
		log.Add(Exited)
	}()
	l := log.Await(tb, from, wait, func(l string) bool { return ready(l) || l == Exited })
	if l == Exited {
		tb.Fatalf("%s exited at start:\n%s", cmd.Path, log.Text())
	}
}

// Stop kills mosquitto (SIGKILL: a crash) and waits for its end.
func (m *Mosquitto) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}
