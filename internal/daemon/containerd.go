package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/ditto"
)

// Topics of containerd's events that may end a container. The init
// process's exit ends it even when its task is kept (to be restarted);
// delete comes later, once the task is gone.
const (
	topicTaskExit   = "/tasks/exit"
	topicTaskDelete = "/tasks/delete"
)

// followContainerd subscribes to containerd's task events and asks for a
// reconcile whenever a task of a watched namespace exits or is deleted:
// the reconcile removes the attachments of containers whose init process
// is gone. It reconnects when containerd restarts, and asks for a
// reconcile after each (re)connection, for what happened meanwhile.
// containerd unreachable is logged at warn level when it starts (at the
// daemon's start, or when the events stop) and once when it ends; it is
// in the metrics (kanto_can_containerd_up) and CANManager.
func (d *Daemon) followContainerd(ctx context.Context) {
	first := d.retry
	if first <= 0 {
		first = 250 * time.Millisecond
	}
	backoff := first
	for ctx.Err() == nil {
		err := d.subscribe(ctx, func() {
			backoff = first
			d.containerdConnected()
			d.request("containerd (re)connected", attach.Scope{Full: true})
		})
		if ctx.Err() != nil {
			return
		}
		d.containerdFailed(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// containerdLink is the daemon's subscription to containerd's events.
type containerdLink struct {
	mu        sync.Mutex
	tried     bool   // a connection was tried
	connected bool   // the subscription is open
	err       string // why not, while not connected
}

func (d *Daemon) containerdConnected() {
	c := &d.containerd
	c.mu.Lock()
	wasDown, was := c.tried && !c.connected, c.err
	c.tried, c.connected, c.err = true, true, ""
	c.mu.Unlock()
	d.metrics.containerdUp.Set(1)
	if wasDown {
		d.log.Info("watching containerd: reachable again", "address", d.cfg.Containerd, "was", was)
	} else {
		d.log.Info("watching containerd", "address", d.cfg.Containerd)
	}
	d.kickDitto()
}

func (d *Daemon) containerdFailed(err error) {
	c := &d.containerd
	c.mu.Lock()
	first, lost := !c.tried, c.connected
	changed := first || lost || c.err != err.Error()
	c.tried, c.connected, c.err = true, false, err.Error()
	c.mu.Unlock()
	d.metrics.containerdUp.Set(0)
	switch {
	case lost:
		d.log.Warn("containerd events stopped: containers that exit are not cleaned up until it is back; reconnecting",
			"address", d.cfg.Containerd, "err", err)
	case first:
		d.log.Warn("containerd not reachable: containers that exit are not cleaned up until it is; retrying",
			"address", d.cfg.Containerd, "namespaces", strings.Join(d.cfg.Namespaces, ","), "err", err)
	default:
		d.log.Debug("containerd not reachable", "err", err)
	}
	if changed {
		d.kickDitto()
	}
}

// containerdStatus is the link as CANManager shows it; nil when the
// daemon does not watch containerd.
func (d *Daemon) containerdStatus() *ditto.ContainerdStatus {
	if d.cfg.Containerd == "" {
		return nil
	}
	c := &d.containerd
	c.mu.Lock()
	defer c.mu.Unlock()
	return &ditto.ContainerdStatus{Address: d.cfg.Containerd, Namespaces: append([]string{}, d.cfg.Namespaces...), Connected: c.connected, Error: c.err}
}

// subscribe streams events until the stream breaks.
func (d *Daemon) subscribe(ctx context.Context, onConnected func()) error {
	conn, err := grpc.NewClient("unix://"+d.cfg.Containerd,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := eventsapi.NewEventsClient(conn).Subscribe(ctx, &eventsapi.SubscribeRequest{
		Filters: []string{`topic=="` + topicTaskExit + `"`, `topic=="` + topicTaskDelete + `"`},
	}, grpc.WaitForReady(false))
	if err != nil {
		return err
	}
	// The subscription is open (gRPC created the stream on a ready
	// connection): anything that happens from now on is seen.
	onConnected()
	for {
		env, err := stream.Recv()
		if err != nil {
			return err
		}
		if !slices.Contains(d.cfg.Namespaces, env.GetNamespace()) {
			continue
		}
		d.metrics.containerdEvent(env.GetTopic())
		id, err := containerID(env.GetTopic(), env.GetEvent().GetValue())
		if err != nil {
			// Cannot tell whose: look at every attachment.
			d.log.Warn("containerd event", "topic", env.GetTopic(), "err", err)
			d.request("container event "+env.GetTopic(), attach.Scope{Full: true})
			continue
		}
		d.request("container event "+env.GetTopic(), attach.Scope{Containers: []string{id}})
	}
}

// containerID decodes the id of the container a task event is about.
func containerID(topic string, payload []byte) (string, error) {
	switch topic {
	case topicTaskExit:
		var e eventtypes.TaskExit
		if err := proto.Unmarshal(payload, &e); err != nil {
			return "", fmt.Errorf("%s: %w", topic, err)
		}
		return e.GetContainerID(), nil
	case topicTaskDelete:
		var e eventtypes.TaskDelete
		if err := proto.Unmarshal(payload, &e); err != nil {
			return "", fmt.Errorf("%s: %w", topic, err)
		}
		return e.GetContainerID(), nil
	}
	return "", fmt.Errorf("unexpected topic %s", topic)
}
