package daemon

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	eventtypes "github.com/containerd/containerd/api/events"
	"google.golang.org/protobuf/proto"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Requests made while a reconcile runs are merged into one more run, each
// reason once, their scopes together.
func TestRequestsMerge(t *testing.T) {
	d := &Daemon{kick: make(chan struct{}, 1)}
	d.request("bus can0", attach.Scope{HostBuses: []string{"can0"}})
	d.request("host end made", attach.Scope{HostEnds: []string{"kcan0123456789a"}})
	d.request("bus can0", attach.Scope{HostBuses: []string{"can0"}})
	if len(d.kick) != 1 {
		t.Fatalf("%d wake-ups pending, want 1", len(d.kick))
	}
	if got := strings.Join(d.pending, ", "); got != "bus can0, host end made" {
		t.Fatalf("pending reasons %q", got)
	}
	if d.scope.Full || !slices.Equal(d.scope.HostBuses, []string{"can0"}) || !slices.Equal(d.scope.HostEnds, []string{"kcan0123456789a"}) {
		t.Fatalf("merged scope %+v", d.scope)
	}
}

func TestContainerIDOfTaskEvents(t *testing.T) {
	exit, _ := proto.Marshal(&eventtypes.TaskExit{ContainerID: "app", ID: "app", Pid: 42})
	del, _ := proto.Marshal(&eventtypes.TaskDelete{ContainerID: "db", Pid: 43})
	for _, c := range []struct {
		topic   string
		payload []byte
		want    string
	}{{topicTaskExit, exit, "app"}, {topicTaskDelete, del, "db"}} {
		if got, err := containerID(c.topic, c.payload); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.topic, got, err, c.want)
		}
	}
	if _, err := containerID(topicTaskExit, []byte{0xff}); err == nil {
		t.Error("a malformed payload decoded")
	}
	if _, err := containerID("/tasks/start", exit); err == nil {
		t.Error("an unexpected topic decoded")
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

func TestDittoConfigValidate(t *testing.T) {
	if err := DefaultConfig().Ditto.Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	if DefaultConfig().Ditto.Enabled {
		t.Error("Ditto is on by default")
	}
	for _, c := range []struct {
		change func(*DittoConfig)
		want   string
	}{
		{func(c *DittoConfig) { c.Broker = "localhost:1883" }, "--mqtt-broker"},
		{func(c *DittoConfig) { c.Broker = "tcp://localhost" }, "--mqtt-broker"},
		{func(c *DittoConfig) { c.ClientID = "connector" }, "--mqtt-client-id"},
		{func(c *DittoConfig) { c.ThingID = "nonamespace" }, "--thing-id"},
		{func(c *DittoConfig) { c.Poll = 0 }, "--ditto-poll"},
	} {
		cfg := DefaultConfig().Ditto
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line naming %s", cfg, err, c.want)
		}
	}
}

// The twin shows an attachment only once its record exists: an attach
// writes it after every rule, so one without is half made (or an orphan).
func TestRecordedHidesAttachmentsWithoutRecord(t *testing.T) {
	dir := t.TempDir()
	if err := record.Write(dir, record.Record{HostEnd: "kcandone", Target: "netns:1", Label: "container done"}); err != nil {
		t.Fatal(err)
	}
	list := []attach.Attachment{
		{HostEnd: "kcandone", Container: "done", Rules: []attach.RuleState{{Direction: "rx"}, {Direction: "tx"}}},
		{HostEnd: "kcanhalf", Container: "half", Rules: []attach.RuleState{{Direction: "rx"}}},
	}
	got, err := recorded(list, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].HostEnd != "kcandone" {
		t.Fatalf("recorded = %+v, want only kcandone", got)
	}
	if list[1].HostEnd != "kcanhalf" {
		t.Fatalf("recorded changed its input: %+v", list)
	}
	if got, err := recorded(list, filepath.Join(dir, "none")); err != nil || len(got) != 0 {
		t.Fatalf("no records directory: %+v, %v; want none and no error", got, err)
	}
}
