//go:build kernel

package ditto

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

const (
	// A bound, not a sleep: container starts take seconds under emulation.
	wait     = 60 * time.Second
	imageRef = "docker.io/kanto-can/app:1"
	// installedHook is where the manifests' hooks find kanto-can.
	installedHook = "/usr/bin/kanto-can"
)

var sleeper = []string{"/bin/sh", "-c", "echo up; exec sleep 600"}

// realKanto starts Kanto with the test image and kanto-can installed at
// installedHook.
func realKanto(t *testing.T) *kantotest.Kanto {
	t.Helper()
	kerneltest.Require(t)
	if err := os.Symlink(kerneltest.Binary(t), installedHook); err != nil {
		t.Fatalf("install kanto-can: %v", err)
	}
	t.Cleanup(func() { os.Remove(installedHook) })
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)}
	return kantotest.Start(t, kantotest.WithImage(imageRef, files))
}

// appManifest is a container named name with kanto-can's hooks and
// KANTO_CAN=bus.
func appManifest(name, bus string) map[string]any {
	return map[string]any{
		"container_name": name,
		"image":          map[string]any{"name": imageRef},
		"host_config":    map[string]any{"network_mode": "bridge"},
		"config":         map[string]any{"env": []string{"KANTO_CAN=" + bus}, "cmd": sleeper},
		"hooks": []map[string]any{
			{"path": installedHook, "args": []string{"kanto-can", "hook", "prestart"}, "type": 0},
			{"path": installedHook, "args": []string{"kanto-can", "hook", "poststop"}, "type": 2},
		},
	}
}

func frame(id uint32, data ...byte) kerneltest.Frame { return kerneltest.Frame{ID: id, Data: data} }

// metricsData is CANMetrics' data message whose snapshot ok accepts.
func metricsData(ok func(snapshot []map[string]any) bool) func(msg) bool {
	return func(m msg) bool {
		if m.Env.Topic != "org.example/gw1/things/live/messages/data" || m.Env.Path != "/features/CANMetrics/outbox/messages/data" {
			return false
		}
		var v struct{ Snapshot []map[string]any }
		json.Unmarshal(m.Env.Value, &v)
		return ok == nil || ok(v.Snapshot)
	}
}

// measurement is the value of id in the snapshot of originator.
func measurement(snap []map[string]any, originator, id string) (float64, bool) {
	for _, s := range snap {
		if s["originator"] != originator {
			continue
		}
		ms, _ := s["measurements"].([]any)
		for _, m := range ms {
			mm, _ := m.(map[string]any)
			if mm["id"] == id {
				v, ok := mm["value"].(float64)
				return v, ok
			}
		}
	}
	return 0, false
}

// attachmentCount is a CANBus value's attachment count.
func attachmentCount(v map[string]any) int {
	n, _ := status(v)["attachmentCount"].(float64)
	return int(n)
}

// The whole way to the fleet, with the real parts: kanto-can-daemon --ditto
// -> Kanto's local mosquitto -> Kanto's suite-connector -> a hub broker,
// where a backend sees a Kanto container's bus as a CANBus feature with
// the container by id and name; the features follow the bus and the
// container; commands from the hub are answered there; metrics come when
// asked for and stop when told; the hub going away and every part
// restarting lose nothing on the hub.
func TestDittoFeatures(t *testing.T) {
	for _, b := range []string{"dbus0", "dbus1", "dbus2", "dbus3"} {
		kerneltest.VCAN(t, b, 16)
	}
	k := realKanto(t)
	ch := startChain(t, 0)
	daemonArgs := []string{"--ditto", "--mqtt-broker=" + ch.local.URL(), "--ditto-poll=1s"}
	d := kerneltest.StartDaemon(t, wait, daemonArgs...)
	kc := kerneltest.Binary(t)

	// The daemon asks for the thing id; CANManager reaches the hub.
	ch.local.Log.Await(t, 0, wait, func(s string) bool { return kerneltest.ContainsAll(s, "from kanto-can", "edge/thing/request") })
	m, _ := ch.await(t, 0, "CANManager", onHub("CANManager", "modify", nil))
	validate(t, "CANManager", m.Env.Value)
	if h, _ := m.Env.Headers["response-required"].(bool); h {
		t.Errorf("CANManager: headers %v", m.Env.Headers)
	}

	// A netns attached by hand shares dbus0 with the container, so the
	// bus keeps a feature when the container stops.
	other := kerneltest.NewNS(t)
	kerneltest.MustRun(t, kc, "attach", "--netns", other.Path(), "--bus", "dbus0")
	t.Cleanup(func() { kerneltest.Run(t, kc, "detach", "--netns", other.Path()) })

	c := k.CreateJSON(t, appManifest("ditto-app", "dbus0"))
	k.Start(t, c.Name)
	k.WaitLog(t, c.ID, "up", 1, wait)
	c = k.Get(t, c.Name)
	m, _ = ch.await(t, 0, "CANBus:dbus0 with the container", onHub("CANBus:dbus0", "modify", func(v map[string]any) bool {
		a, _ := status(v)["attachments"].(map[string]any)
		_, ok := a[c.ID]
		return ok
	}))
	validate(t, "CANBus", m.Env.Value)
	var bus struct {
		Properties struct {
			Status struct {
				Bus             string
				Kind            string
				Up              bool
				AttachmentCount int
				Attachments     map[string]struct {
					Name, Label, Inside, Direction, State string
					RxFilters, TxFilters                  []string
				}
			}
		}
	}
	json.Unmarshal(m.Env.Value, &bus)
	st := bus.Properties.Status
	a := st.Attachments[c.ID]
	if st.Bus != "dbus0" || st.Kind != "vcan" || !st.Up || st.AttachmentCount != 2 || a.Name != c.Name || a.Inside != "dbus0" ||
		a.Direction != "both" || a.State != "routed" || !slices.Equal(a.RxFilters, []string{"all"}) || !slices.Equal(a.TxFilters, []string{"all"}) {
		t.Errorf("CANBus:dbus0: %s", m.Env.Value)
	}
	m, _ = ch.await(t, 0, "CANManager with two attachments", onHub("CANManager", "modify", func(v map[string]any) bool {
		return status(v)["attachments"] == 2.0
	}))
	validate(t, "CANManager", m.Env.Value)
	var mgr struct {
		Properties struct {
			Status struct {
				Version string
				Modules map[string]bool
				Buses   []string
			}
		}
	}
	json.Unmarshal(m.Env.Value, &mgr)
	if ms := mgr.Properties.Status; ms.Version == "" || !ms.Modules["can_gw"] || !ms.Modules["vxcan"] || !ms.Modules["vcan"] || !slices.Equal(ms.Buses, []string{"dbus0"}) {
		t.Errorf("CANManager: %s", m.Env.Value)
	}

	t.Run("commands", func(t *testing.T) {
		from := ch.backend.Len()
		ch.send(t, "r-attach", "CANManager", "attach", map[string]any{"bus": "dbus1"})
		m, _ := ch.await(t, from, "404", hubReply("r-attach", 404))
		if !strings.Contains(string(m.Env.Value), "messages:subject.notfound") || m.Env.Headers["correlation-id"] != "hub-r-attach" ||
			m.Env.Path != "/features/CANManager/outbox/messages/attach" {
			t.Errorf("unknown subject: %s", m.Payload)
		}
		ch.send(t, "r-bad", "CANMetrics", "request", map[string]any{"frequency": "often"})
		m, _ = ch.await(t, from, "400", hubReply("r-bad", 400))
		if !strings.Contains(string(m.Env.Value), "messages:parameter.invalid") || m.Env.Headers["correlation-id"] != "hub-r-bad" {
			t.Errorf("bad frequency: %s", m.Payload)
		}
		// refresh: 204, then every feature again.
		from = ch.backend.Len()
		ch.send(t, "r-refresh", "CANManager", "refresh", nil)
		m, _ = ch.await(t, from, "204", hubReply("r-refresh", 204))
		if m.Env.Headers["correlation-id"] != "hub-r-refresh" {
			t.Errorf("refresh: %s", m.Payload)
		}
		for _, f := range []string{"CANManager", "CANMetrics", "CANBus:dbus0"} {
			ch.await(t, from, f+" after refresh", onHub(f, "modify", nil))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		host := kerneltest.Open(t, nil, "dbus0")
		defer host.Close()
		inside := kerneltest.Open(t, kerneltest.ProcessNS(c.State.Pid), "dbus0")
		defer inside.Close()
		from := ch.backend.Len()
		ch.send(t, "r-metrics", "CANMetrics", "request", map[string]any{"frequency": "1s"})
		ch.await(t, from, "204", hubReply("r-metrics", 204))
		var sent []kerneltest.Frame
		for i := range 5 {
			f := frame(0x100+uint32(i), byte(i))
			host.Send(t, f)
			sent = append(sent, f)
		}
		inside.Expect(t, sent, wait)
		for i := range 3 {
			inside.Send(t, frame(0x200+uint32(i), byte(i)))
		}
		origin := "container:" + c.ID
		m, next := ch.await(t, from, "data with the container's counters", metricsData(func(s []map[string]any) bool {
			rx, _ := measurement(s, origin, "frames.rx.handled")
			tx, _ := measurement(s, origin, "frames.tx.handled")
			return rx >= 5 && tx >= 3
		}))
		validate(t, "CANMetrics-data", m.Env.Value)
		if v, ok := measurement(dataOf(m), "bus:dbus0", "frames.tx"); !ok || v < 8 {
			t.Errorf("bus dbus0's counters: %s", m.Env.Value)
		}
		// Periodic: the next one about a second later.
		ch.await(t, next, "more data", metricsData(nil))
	})

	// The hub goes away with metrics on; meanwhile dbus2's last attachment
	// goes and dbus3 gets one. suite-connector says the link is down,
	// metrics pause, the features still go to the local broker; the hub
	// back, the thing id is answered again and the hub ends with the
	// current state: dbus2 deleted, dbus3 attached, data again.
	on2, on3 := kerneltest.NewNS(t), kerneltest.NewNS(t)
	t.Run("the hub away and back", func(t *testing.T) {
		kerneltest.MustRun(t, kc, "attach", "--netns", on2.Path(), "--bus", "dbus2")
		ch.await(t, 0, "CANBus:dbus2", onHub("CANBus:dbus2", "modify", nil))
		local := ch.device.Len()
		ch.hub.Stop()
		await(t, ch.device, local, "the cloud link down", remoteStatus(false))
		d.AwaitLog(t, "cloud link", "connected=false")
		kerneltest.MustRun(t, kc, "detach", "--netns", on2.Path())
		kerneltest.MustRun(t, kc, "attach", "--netns", on3.Path(), "--bus", "dbus3")
		t.Cleanup(func() { kerneltest.Run(t, kc, "detach", "--netns", on3.Path()) })
		// Published after the daemon took the status: what follows on
		// the local broker came after it too.
		_, paused := await(t, ch.device, local, "CANBus:dbus2 deleted, locally", onDevice("CANBus:dbus2", "delete", nil))
		await(t, ch.device, local, "CANBus:dbus3, locally", onDevice("CANBus:dbus3", "modify", nil))

		hubFrom := ch.backend.Len()
		ch.hub.Start(t)
		_, resumed := await(t, ch.device, paused, "the cloud link up", remoteStatus(true))
		await(t, ch.device, paused, "the thing id again", func(m msg) bool { return m.Topic == ditto.TopicThingResponse })
		var window time.Duration
		for i, m := range since(ch.device, paused)[:resumed-paused] {
			if metricsData(nil)(m) {
				t.Errorf("metrics data while the hub was away: %s", m.Payload)
			}
			if i == resumed-paused-1 {
				window = m.At.Sub(ch.device.Message(paused).At)
			}
		}
		t.Logf("no data in the %v the hub was away (the period is 1s)", window.Round(time.Millisecond))

		ch.await(t, hubFrom, "CANBus:dbus2 deleted", onHub("CANBus:dbus2", "delete", nil))
		ch.await(t, hubFrom, "CANBus:dbus3 with the attachment", onHub("CANBus:dbus3", "modify", func(v map[string]any) bool {
			return attachmentCount(v) == 1
		}))
		ch.await(t, hubFrom, "CANManager, current", onHub("CANManager", "modify", func(v map[string]any) bool {
			return fmt.Sprint(status(v)["buses"]) == "[dbus0 dbus3]"
		}))
		ch.await(t, hubFrom, "metrics data again", metricsData(nil))

		// Frequency 0 stops the data. No event says "no more data":
		// a refresh's round trip and its republish (a debounce period
		// at least) bound the wait.
		from := ch.backend.Len()
		ch.send(t, "r-stop", "CANMetrics", "request", map[string]any{"frequency": 0})
		_, stopped := ch.await(t, from, "204", hubReply("r-stop", 204))
		ch.send(t, "r-refresh2", "CANManager", "refresh", nil)
		ch.await(t, stopped, "the refresh's 204", hubReply("r-refresh2", 204))
		_, end := ch.await(t, stopped, "CANBus:dbus0 after the refresh", onHub("CANBus:dbus0", "modify", nil))
		for _, m := range since(ch.backend, stopped)[:end-stopped] {
			if metricsData(nil)(m) {
				t.Errorf("data after frequency 0: %s", m.Payload)
			}
		}
	})

	// Each part restarted, with a change while it is down: the hub has
	// the current state soon after it is back.
	t.Run("suite-connector restarted", func(t *testing.T) {
		ch.sc.Stop()
		kerneltest.MustRun(t, kc, "detach", "--netns", on3.Path())
		await(t, ch.device, 0, "CANBus:dbus3 deleted, locally", onDevice("CANBus:dbus3", "delete", nil))
		from := ch.backend.Len()
		ch.sc.Start(t)
		ch.await(t, from, "CANBus:dbus3 deleted", onHub("CANBus:dbus3", "delete", nil))
		ch.await(t, from, "CANBus:dbus0 again", onHub("CANBus:dbus0", "modify", nil))
	})
	t.Run("the local broker restarted", func(t *testing.T) {
		ch.local.Stop()
		d.AwaitLog(t, "mqtt connection lost")
		kerneltest.MustRun(t, kc, "attach", "--netns", on3.Path(), "--bus", "dbus3")
		from := ch.backend.Len()
		ch.local.Start(t)
		ch.await(t, from, "CANBus:dbus3 with the attachment", onHub("CANBus:dbus3", "modify", func(v map[string]any) bool {
			return attachmentCount(v) == 1
		}))
		ch.await(t, from, "CANManager again", onHub("CANManager", "modify", nil))
	})
	top := t // the new daemon runs until the test ends
	t.Run("the daemon restarted", func(t *testing.T) {
		d.Kill9(t)
		// While it is away, dbus2 gets an attachment and dbus3 loses its
		// last: the new daemon knows from its memory (beside the
		// records) that it had published dbus3.
		kerneltest.MustRun(t, kc, "attach", "--netns", on2.Path(), "--bus", "dbus2")
		kerneltest.MustRun(t, kc, "detach", "--netns", on3.Path())
		from := ch.backend.Len()
		d = kerneltest.StartDaemon(top, wait, daemonArgs...)
		ch.await(t, from, "CANBus:dbus2 with the attachment", onHub("CANBus:dbus2", "modify", func(v map[string]any) bool {
			return attachmentCount(v) == 1
		}))
		ch.await(t, from, "CANBus:dbus3 deleted", onHub("CANBus:dbus3", "delete", nil))
		kerneltest.MustRun(t, kc, "detach", "--netns", on2.Path())
	})

	t.Run("a bus that goes is deleted", func(t *testing.T) {
		from := ch.backend.Len()
		kerneltest.MustRun(t, kc, "attach", c.Name, "--bus", "dbus1")
		m, _ := ch.await(t, from, "CANBus:dbus1", onHub("CANBus:dbus1", "modify", nil))
		validate(t, "CANBus", m.Env.Value)
		kerneltest.MustRun(t, "ip", "link", "del", "dbus1")
		m, _ = ch.await(t, from, "CANBus:dbus1 deleted", onHub("CANBus:dbus1", "delete", nil))
		if len(m.Env.Value) != 0 {
			t.Errorf("delete with a value: %s", m.Payload)
		}
		ch.await(t, from, "CANManager: dbus1 missing", onHub("CANManager", "modify", func(v map[string]any) bool {
			return fmt.Sprint(status(v)["missingBuses"]) == "[dbus1]"
		}))
	})

	t.Run("the container stops", func(t *testing.T) {
		from := ch.backend.Len()
		k.Stop(t, c.Name)
		m, _ := ch.await(t, from, "CANBus:dbus0 without the container", onHub("CANBus:dbus0", "modify", func(v map[string]any) bool {
			a, _ := status(v)["attachments"].(map[string]any)
			_, ok := a[c.ID]
			return !ok
		}))
		validate(t, "CANBus", m.Env.Value)
		if attachmentCount(mapOf(m.Env.Value)) != 1 {
			t.Errorf("after the stop: %s", m.Payload)
		}
		// The last attachment goes: the feature is deleted.
		kerneltest.MustRun(t, kc, "detach", "--netns", other.Path())
		ch.await(t, from, "CANBus:dbus0 deleted", onHub("CANBus:dbus0", "delete", nil))
	})
}

func mapOf(value []byte) map[string]any {
	var v map[string]any
	json.Unmarshal(value, &v)
	return v
}

func dataOf(m msg) []map[string]any {
	var v struct{ Snapshot []map[string]any }
	json.Unmarshal(m.Env.Value, &v)
	return v.Snapshot
}

// Without --ditto the daemon connects to no broker: mosquitto on the
// default port (where --ditto would connect) sees only the test's and
// suite-connector's clients, while the daemon reconciles a bus change;
// with --ditto, the same check sees it (the check can fail), and the bus
// reaches the hub.
func TestDittoOffConnectsNowhere(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.RequireModules(t, "vcan")
	// Made with ip: the test deletes and re-creates it.
	kerneltest.MustRun(t, "ip", "link", "add", "doff0", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "doff0", "up")
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "doff0") })
	ch := startChain(t, 1883)
	b := ch.local
	ns := kerneltest.NewNS(t)
	kc := kerneltest.Binary(t)
	kerneltest.MustRun(t, kc, "attach", "--netns", ns.Path(), "--bus", "doff0")
	// Detached before the namespace goes: else its record outlives it
	// (no daemon runs then to forget it) and later tests find it.
	t.Cleanup(func() { kerneltest.Run(t, kc, "detach", "--netns", ns.Path()) })

	// The clients that are not the daemon: the test's and suite-connector's.
	known := map[string]bool{"test-device": true, "connector": true, "cloud": true}
	clients := func(from int) []string {
		var ids []string
		for _, l := range strings.Split(b.Log.Text(), "\n")[from:] {
			if _, rest, ok := strings.Cut(l, "New client connected from "); ok {
				if _, id, ok := strings.Cut(rest, " as "); ok {
					id, _, _ = strings.Cut(id, " ")
					ids = append(ids, id)
				}
			}
		}
		return ids
	}
	for _, on := range []bool{false, true} {
		from := b.Log.Len()
		hubFrom := ch.backend.Len()
		args := []string{}
		if on {
			args = append(args, "--ditto")
		}
		d := kerneltest.StartDaemon(t, wait, args...)
		// A bus that comes back, which the daemon acts on: by the time it
		// has put the routes back, a daemon with --ditto has long
		// connected.
		kerneltest.MustRun(t, "ip", "link", "del", "doff0")
		kerneltest.MustRun(t, "ip", "link", "add", "doff0", "type", "vcan")
		kerneltest.MustRun(t, "ip", "link", "set", "doff0", "up")
		d.AwaitLog(t, "msg=reconciled", "restored=")
		if on {
			b.Log.Await(t, from, wait, func(s string) bool { return strings.Contains(s, "as kanto-can") })
			ch.await(t, hubFrom, "CANBus:doff0", onHub("CANBus:doff0", "modify", nil))
		}
		got := clients(from)
		if seen := slices.Contains(got, "kanto-can"); seen != on {
			t.Errorf("--ditto %v: clients that connected: %v", on, got)
		}
		if !on && ch.backend.Len() != hubFrom {
			t.Errorf("without --ditto, on the hub: %v", since(ch.backend, hubFrom))
		}
		// Whatever the topic (the broker sees every publish, not only
		// those the subscribers asked for).
		var others []string
		for _, l := range strings.Split(b.Log.Text(), "\n")[from:] {
			if id, ok := strings.CutPrefix(l, "Received PUBLISH from "); ok {
				if id, _, _ = strings.Cut(id, " "); !known[id] {
					others = append(others, l)
				}
			}
		}
		if (len(others) > 0) != on {
			t.Errorf("--ditto %v: publishes of others: %v", on, others)
		}
		d.Kill9(t)
	}
}
