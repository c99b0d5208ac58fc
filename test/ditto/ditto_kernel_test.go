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

// reply is the answer to request reqID with status.
func reply(reqID string, status int) func(msg) bool {
	return func(m msg) bool {
		return m.Topic == fmt.Sprintf("command///res/%s/%d", reqID, status) && m.Env.Status == status
	}
}

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

// A Kanto container with a bus shows as a CANBus feature keyed by its
// container id, with its name; the features follow the bus and the
// container; commands are answered; metrics come when asked for and stop
// when told; a broker restart is survived.
func TestDittoFeatures(t *testing.T) {
	kerneltest.VCAN(t, "dbus0", 16)
	kerneltest.VCAN(t, "dbus1", 16)
	k := realKanto(t)
	b := kerneltest.StartMosquitto(t, 0, wait)
	conn := startConnector(t, b)
	d := kerneltest.StartDaemon(t, wait, "--ditto", "--mqtt-broker="+b.URL(), "--ditto-poll=1s")
	kc := kerneltest.Binary(t)

	// The daemon asks for the thing id, and publishes CANManager.
	b.Log.Await(t, 0, wait, func(s string) bool { return kerneltest.ContainsAll(s, "from kanto-can", "edge/thing/request") })
	m, _ := conn.await(t, 0, "CANManager", feature("CANManager", "modify", nil))
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
	m, next := conn.await(t, 0, "CANBus:dbus0 with the container", feature("CANBus:dbus0", "modify", func(v map[string]any) bool {
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
	m, _ = conn.await(t, 0, "CANManager with two attachments", feature("CANManager", "modify", func(v map[string]any) bool {
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

	hdr := map[string]any{"correlation-id": "c-1", "response-required": true, "content-type": "application/json"}
	t.Run("commands", func(t *testing.T) {
		from := conn.msgs.Len()
		conn.send(t, "r-attach", "CANManager", "attach", hdr, map[string]any{"bus": "dbus1"})
		m, _ := conn.await(t, from, "404", reply("r-attach", 404))
		if !strings.Contains(string(m.Env.Value), "messages:subject.notfound") || m.Env.Headers["correlation-id"] != "c-1" ||
			m.Env.Path != "/features/CANManager/outbox/messages/attach" {
			t.Errorf("unknown subject: %s", m.Raw)
		}
		conn.send(t, "r-bad", "CANMetrics", "request", map[string]any{"correlation-id": "c-2", "response-required": "true"}, map[string]any{"frequency": "often"})
		m, _ = conn.await(t, from, "400", reply("r-bad", 400))
		if !strings.Contains(string(m.Env.Value), "messages:parameter.invalid") {
			t.Errorf("bad frequency: %s", m.Raw)
		}
		// refresh: 204, then every feature again.
		from = conn.msgs.Len()
		conn.send(t, "r-refresh", "CANManager", "refresh", hdr, nil)
		conn.await(t, from, "204", reply("r-refresh", 204))
		for _, f := range []string{"CANManager", "CANMetrics", "CANBus:dbus0"} {
			conn.await(t, from, f+" after refresh", feature(f, "modify", nil))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		host := kerneltest.Open(t, nil, "dbus0")
		defer host.Close()
		inside := kerneltest.Open(t, kerneltest.ProcessNS(c.State.Pid), "dbus0")
		defer inside.Close()
		from := conn.msgs.Len()
		conn.send(t, "r-metrics", "CANMetrics", "request", hdr, map[string]any{"frequency": "1s"})
		conn.await(t, from, "204", reply("r-metrics", 204))
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
		m, next := conn.await(t, from, "data with the container's counters", metricsData(func(s []map[string]any) bool {
			rx, _ := measurement(s, origin, "frames.rx.handled")
			tx, _ := measurement(s, origin, "frames.tx.handled")
			return rx >= 5 && tx >= 3
		}))
		validate(t, "CANMetrics-data", m.Env.Value)
		if v, ok := measurement(dataOf(m), "bus:dbus0", "frames.tx"); !ok || v < 8 {
			t.Errorf("bus dbus0's counters: %s", m.Env.Value)
		}
		// Periodic: the next one about a second later.
		_, next = conn.await(t, next, "more data", metricsData(nil))
		// The cloud link down (suite-connector's retained status): no
		// data; up again: data again.
		conn.setRemote(conn.c, false)
		d.AwaitLog(t, "cloud link", "connected=false")
		// Data published just before the daemon took the status may still
		// be on its way: let it arrive. Then no event says "no data": two
		// periods are the bound.
		time.Sleep(300 * time.Millisecond)
		paused := conn.msgs.Len()
		time.Sleep(2200 * time.Millisecond)
		noData(t, conn, paused, "while the cloud link is down")
		conn.setRemote(conn.c, true)
		_, next = conn.await(t, paused, "data once the cloud link is up", metricsData(nil))
		// Frequency 0 stops it.
		conn.send(t, "r-stop", "CANMetrics", "request", hdr, map[string]any{"frequency": 0})
		_, next = conn.await(t, next, "204", reply("r-stop", 204))
		// No event says "no more data": three periods are the bound.
		time.Sleep(3 * time.Second)
		noData(t, conn, next, "after frequency 0")
	})

	t.Run("a bus that goes is deleted", func(t *testing.T) {
		from := conn.msgs.Len()
		kerneltest.MustRun(t, kc, "attach", c.Name, "--bus", "dbus1")
		m, _ := conn.await(t, from, "CANBus:dbus1", feature("CANBus:dbus1", "modify", nil))
		validate(t, "CANBus", m.Env.Value)
		kerneltest.MustRun(t, "ip", "link", "del", "dbus1")
		m, _ = conn.await(t, from, "CANBus:dbus1 deleted", feature("CANBus:dbus1", "delete", nil))
		if len(m.Env.Value) != 0 {
			t.Errorf("delete with a value: %s", m.Raw)
		}
		conn.await(t, from, "CANManager: dbus1 missing", feature("CANManager", "modify", func(v map[string]any) bool {
			return fmt.Sprint(status(v)["missingBuses"]) == "[dbus1]"
		}))
	})

	t.Run("broker restart", func(t *testing.T) {
		b.Stop()
		d.AwaitLog(t, "mqtt connection lost")
		logFrom, from := b.Log.Len(), conn.msgs.Len()
		b.Start(t)
		b.Log.Await(t, logFrom, wait, func(s string) bool { return kerneltest.ContainsAll(s, "from kanto-can", "edge/thing/request") })
		for _, f := range []string{"CANManager", "CANMetrics", "CANBus:dbus0"} {
			conn.await(t, from, f+" after the restart", feature(f, "modify", nil))
		}
	})

	t.Run("the container stops", func(t *testing.T) {
		from := conn.msgs.Len()
		k.Stop(t, c.Name)
		m, _ := conn.await(t, from, "CANBus:dbus0 without the container", feature("CANBus:dbus0", "modify", func(v map[string]any) bool {
			a, _ := status(v)["attachments"].(map[string]any)
			_, ok := a[c.ID]
			return !ok
		}))
		validate(t, "CANBus", m.Env.Value)
		if !strings.Contains(m.Raw, `"attachmentCount":1`) {
			t.Errorf("after the stop: %s", m.Raw)
		}
		// The last attachment goes: the feature is deleted.
		kerneltest.MustRun(t, kc, "detach", "--netns", other.Path())
		conn.await(t, from, "CANBus:dbus0 deleted", feature("CANBus:dbus0", "delete", nil))
	})
	_ = next
	if t.Failed() {
		t.Logf("mosquitto:\n%s", b.Log.Text())
	}
}

// noData fails if metrics data arrived from index from on.
func noData(t *testing.T, conn *connector, from int, when string) {
	t.Helper()
	for _, s := range strings.Split(conn.msgs.Text(), "\n")[from:] {
		var x msg
		json.Unmarshal([]byte(s), &x)
		if metricsData(nil)(x) {
			t.Errorf("data %s: %s", when, s)
		}
	}
}

func dataOf(m msg) []map[string]any {
	var v struct{ Snapshot []map[string]any }
	json.Unmarshal(m.Env.Value, &v)
	return v.Snapshot
}

// Without --ditto the daemon connects to no broker: mosquitto on the
// default port (where --ditto would connect) sees only the test's own
// client, while the daemon reconciles a bus change; with --ditto, the
// same check sees it (the check can fail).
func TestDittoOffConnectsNowhere(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.RequireModules(t, "vcan")
	// Made with ip: the test deletes and re-creates it.
	kerneltest.MustRun(t, "ip", "link", "add", "doff0", "type", "vcan")
	kerneltest.MustRun(t, "ip", "link", "set", "doff0", "up")
	t.Cleanup(func() { kerneltest.Run(t, "ip", "link", "del", "doff0") })
	b := kerneltest.StartMosquitto(t, 1883, wait)
	witness := startConnector(t, b)
	ns := kerneltest.NewNS(t)
	kc := kerneltest.Binary(t)
	kerneltest.MustRun(t, kc, "attach", "--netns", ns.Path(), "--bus", "doff0")
	// Detached before the namespace goes: else its record outlives it
	// (no daemon runs then to forget it) and later tests find it.
	t.Cleanup(func() { kerneltest.Run(t, kc, "detach", "--netns", ns.Path()) })

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
		msgsFrom := witness.msgs.Len()
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
			witness.await(t, msgsFrom, "CANBus:doff0", feature("CANBus:doff0", "modify", nil))
		}
		got := clients(from)
		if seen := slices.Contains(got, "kanto-can"); seen != on {
			t.Errorf("--ditto %v: clients that connected: %v", on, got)
		}
		if !on && witness.msgs.Len() != msgsFrom {
			t.Errorf("without --ditto, published: %s", strings.Join(strings.Split(witness.msgs.Text(), "\n")[msgsFrom:], "\n"))
		}
		// Whatever the topic (the broker sees every publish, not only
		// those the witness subscribed to).
		var others []string
		for _, l := range strings.Split(b.Log.Text(), "\n")[from:] {
			if strings.HasPrefix(l, "Received PUBLISH from ") && !strings.HasPrefix(l, "Received PUBLISH from test-connector ") {
				others = append(others, l)
			}
		}
		if (len(others) > 0) != on {
			t.Errorf("--ditto %v: publishes of others: %v", on, others)
		}
		d.Kill9(t)
	}
}
