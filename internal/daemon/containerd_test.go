package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
)

// fakeContainerd serves containerd's events API on a unix socket: a
// subscription stays open, with no events, until the server stops.
type fakeContainerd struct {
	eventsapi.UnimplementedEventsServer
}

func (fakeContainerd) Subscribe(_ *eventsapi.SubscribeRequest, s eventsapi.Events_SubscribeServer) error {
	<-s.Context().Done()
	return nil
}

func serveContainerd(t *testing.T, path string) *grpc.Server {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	eventsapi.RegisterEventsServer(srv, fakeContainerd{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return srv
}

// awaitLine reads log lines until one contains every one of want.
func awaitLine(t *testing.T, lines <-chan string, want ...string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-lines:
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			if all {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q", want)
		}
	}
}

// containerd unreachable at start is a warning, once however many tries
// fail; reachable again is one line; the events stopping is a warning
// again. kanto_can_containerd_up and CANManager follow.
func TestContainerdUnreachableWarnsOncePerChange(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	logs := &logBuffer{lines: make(chan string, 1000)}
	d := &Daemon{cfg: Config{Containerd: sock, Namespaces: []string{"kanto-cm"}}, log: newLog(logs), kick: make(chan struct{}, 1),
		retry:   5 * time.Millisecond,
		metrics: newMetrics(metricsSource{open: openNowhere, names: func() map[string]string { return nil }, containerd: true})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.followContainerd(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	awaitLine(t, logs.lines, "level=WARN", "containerd not reachable", "address="+sock, "namespaces=kanto-cm")
	for range 3 { // three more tries fail, quietly
		awaitLine(t, logs.lines, "level=DEBUG", "containerd not reachable")
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings for 4 failed tries, want 1:\n%s", n, logs.String())
	}
	if st := d.containerdStatus(); st.Connected || st.Error == "" || st.Address != sock {
		t.Errorf("unreachable: CANManager %+v", st)
	}
	fams := scrape(t, d.metrics)
	if v, ok := fams.Value("kanto_can_containerd_up", nil); !ok || v != 0 {
		t.Errorf("unreachable: containerd up %v (%v)", v, ok)
	}

	srv := serveContainerd(t, sock)
	awaitLine(t, logs.lines, "level=INFO", "watching containerd: reachable again")
	if st := d.containerdStatus(); !st.Connected || st.Error != "" {
		t.Errorf("reachable: CANManager %+v", st)
	}
	if v, ok := scrape(t, d.metrics).Value("kanto_can_containerd_up", nil); !ok || v != 1 {
		t.Errorf("reachable: containerd up %v (%v)", v, ok)
	}
	select {
	case <-d.kick:
	case <-time.After(10 * time.Second):
		t.Fatal("connected: no reconcile asked for")
	}
	d.mu.Lock()
	if len(d.pending) != 1 || !d.scope.Full {
		t.Errorf("connected: pending %q, scope %+v; want a full reconcile", d.pending, d.scope)
	}
	d.mu.Unlock()

	srv.Stop()
	awaitLine(t, logs.lines, "level=WARN", "containerd events stopped")
	awaitLine(t, logs.lines, "level=DEBUG", "containerd not reachable")
	if n := logs.count("level=WARN"); n != 2 {
		t.Errorf("%d warnings in all, want 2:\n%s", n, logs.String())
	}
}

// Docker's namespace is watched by default, with Kanto's and the CRI's.
func TestDefaultNamespaces(t *testing.T) {
	if got := strings.Join(DefaultConfig().Namespaces, ","); got != "kanto-cm,k8s.io,moby" {
		t.Errorf("default namespaces %s", got)
	}
}
