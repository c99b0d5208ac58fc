package daemon

import (
	"strings"
	"testing"
)

// Requests made while a reconcile runs are merged into one more run, each
// reason once.
func TestRequestsMerge(t *testing.T) {
	d := &Daemon{kick: make(chan struct{}, 1)}
	d.request("bus can0")
	d.request("host end made")
	d.request("bus can0")
	if len(d.kick) != 1 {
		t.Fatalf("%d wake-ups pending, want 1", len(d.kick))
	}
	if got := strings.Join(d.pending, ", "); got != "bus can0, host end made" {
		t.Fatalf("pending reasons %q", got)
	}
}

func TestListenAddresses(t *testing.T) {
	if _, err := listen("unix:"); err == nil || !strings.Contains(err.Error(), "needs a path") {
		t.Fatalf("unix: without a path: %v", err)
	}
	ln, err := listen("unix:" + t.TempDir() + "/metrics.sock")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	ln, err = listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := listen("no-port"); err == nil {
		t.Fatal("an address without a port was accepted")
	}
}
