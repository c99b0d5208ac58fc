//go:build kernel

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/sample"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

// topOnce runs kanto-can top --once -o json (as cmd, e.g. under setpriv,
// when given) and decodes it.
func topOnce(t *testing.T, interval string, cmd ...string) sample.View {
	t.Helper()
	args := append(cmd, kerneltest.Binary(t), "top", "--once", "-o", "json", "--interval", interval)
	out, errOut, code := kerneltest.Run(t, args[0], args[1:]...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	schematest.Validate(t, "docs/cli/top.schema.json", []byte(out))
	var v sample.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("top -o json: %v: %s", err, out)
	}
	return v
}

func topBus(t *testing.T, v sample.View, name string) sample.Bus {
	t.Helper()
	for _, b := range v.Buses {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no bus %s in %+v", name, v.Buses)
	return sample.Bus{}
}

func topAttachment(t *testing.T, v sample.View, bus string) sample.Attachment {
	t.Helper()
	for _, a := range v.Attachments {
		if a.HostBus == bus {
			return a
		}
	}
	t.Fatalf("no attachment on %s in %+v", bus, v.Attachments)
	return sample.Attachment{}
}

// A container limited to 100 frames/s floods: top shows the limit's drops
// per second and in total, and a transmit rate no higher than the limit
// allows over the window.
func TestTopShowsRateLimitDrops(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.RequireModules(t, "sch_ingress", "cls_matchall", "act_police")
	const busName, limit, burst = "toplim", 100, 10
	kerneltest.VCAN(t, busName, kerneltest.MTUClassic)
	policy := writePolicy(t, fmt.Sprintf(`{"buses": {%q: {}}, "default": {"buses": {%q: {"tx_rate": {"frames_per_second": %d, "burst": %d}}}}}`,
		busName, busName, limit, burst))
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--config", policy, "--netns", ns.Path(), "--bus", busName+":can0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	inside := kerneltest.Open(t, ns, "can0")

	// Flood until top has read twice.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = sendOnce(inside, frame(0x100+i%0x100, byte(i))) // ENOBUFS: the queue is full, go on
		}
	}()
	v := topOnce(t, "2s")
	close(stop)
	wg.Wait()
	a := topAttachment(t, v, busName)
	t.Logf("%+v", a)
	if r := a.TxRate; r == nil || r.FramesPerSecond != limit || r.Burst != burst || r.DroppedPerSecond <= 0 || r.Dropped == 0 {
		t.Errorf("tx_rate %+v: want the limit %d/s burst %d and drops", r, limit, burst)
	}
	if maxRate := limit*1.1 + burst/v.Interval; a.TxPerSecond <= 0 || a.TxPerSecond > maxRate {
		t.Errorf("%.1f tx frames/s through a limit of %d/s (burst %d): want (0, %.1f]", a.TxPerSecond, limit, burst, maxRate)
	}
}

// A bus going down shows as stopped, a bus deleted as gone; an attachment
// read by a process with CAP_NET_ADMIN only (not root) is the same as
// root's.
func TestTopBusStatesAndCapNetAdmin(t *testing.T) {
	bus, _ := kerneltest.Kvaser(t)
	kerneltest.VCAN(t, "topgone", kerneltest.MTUClassic)
	ns := kerneltest.NewNS(t)
	mustKC(t, "attach", "--netns", ns.Path(), "--bus", bus, "--bus", "topgone:vcan0")
	t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })

	v := topOnce(t, "200ms")
	if b := topBus(t, v, bus); b.State != "error-active" || !b.Up || b.Gone {
		t.Errorf("%s up: %+v", bus, b)
	}
	// CAP_NET_ADMIN only, as user nobody: the same buses and attachments.
	capOnly := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin"}
	nv := topOnce(t, "200ms", capOnly...)
	if len(nv.Buses) != len(v.Buses) || len(nv.Attachments) != len(v.Attachments) {
		t.Errorf("with CAP_NET_ADMIN only: %d buses, %d attachments; as root %d, %d", len(nv.Buses), len(nv.Attachments), len(v.Buses), len(v.Attachments))
	}
	if a := topAttachment(t, nv, bus); a.Direction != "both" {
		t.Errorf("with CAP_NET_ADMIN only: %+v", a)
	}

	kerneltest.MustRun(t, "ip", "link", "set", bus, "down")
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "set", bus, "up") })
	kerneltest.MustRun(t, "ip", "link", "del", "topgone")
	v = topOnce(t, "200ms")
	if b := topBus(t, v, bus); b.State != "stopped" || b.Up {
		t.Errorf("%s down: %+v", bus, b)
	}
	if b := topBus(t, v, "topgone"); !b.Gone || b.Attachments != 1 {
		t.Errorf("topgone deleted: %+v", b)
	}
}
