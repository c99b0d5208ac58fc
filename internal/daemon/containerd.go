package daemon

import (
	"context"
	"fmt"
	"slices"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/kanto-can/kanto-can/internal/attach"
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
func (d *Daemon) followContainerd(ctx context.Context) {
	backoff := 250 * time.Millisecond
	connected := false
	for ctx.Err() == nil {
		err := d.subscribe(ctx, func() {
			connected, backoff = true, 250*time.Millisecond
			d.log.Info("watching containerd", "address", d.cfg.Containerd)
			d.request("containerd (re)connected", attach.Scope{Full: true})
		})
		if ctx.Err() != nil {
			return
		}
		if connected {
			d.log.Warn("containerd events stopped; reconnecting", "err", err)
			connected = false
		} else {
			d.log.Debug("containerd not reachable", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
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
