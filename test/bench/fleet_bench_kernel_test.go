//go:build kernel

package bench

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

// fleetWait bounds every wait of BenchmarkFleetPath: container starts
// take seconds under emulation. A bound, not a sleep.
const fleetWait = time.Minute

// fleetContainers is how many Kanto containers BenchmarkFleetPath
// attaches.
const fleetContainers = 10

// BenchmarkFleetPath measures the way from a device's CAN state to the
// fleet with the real parts: kanto-can-daemon --ditto on Kanto's local
// mosquitto, Kanto's suite-connector, and a second mosquitto as the hub
// (where Eclipse Hono's MQTT adapter would be), a subscriber there as the
// backend. With 10 Kanto containers on one bus, started one by one by
// kanto-cm with kanto-can's hooks, it reports:
//   - start-to-hub: `kanto-cm start` to the container's attachment in the
//     CANBus feature on the hub (median, max); start-to-entrypoint, the
//     container's first log line, for scale. Each start waits until the
//     feature was last published a debounce period (1 s) ago, so that
//     the debounce is not what is measured;
//   - command: a CANMetrics request sent on the hub to its reply there
//     (median, max of 20);
//   - republish-bytes: what one cloud reconnect costs (every feature
//     again), topic and payload bytes on the hub;
//   - data-bytes: one CANMetrics data message with the 10 containers,
//     and, for comparison, one of Kanto's system-metrics (its default
//     measurements, in its format; see docs/benchmarks.md);
//   - idle: the daemon's messages on the hub per hour while nothing
//     changes (KANTO_CAN_FLEET_IDLE, a duration, default 2m, is the
//     window), and its keep-alive packets to the local broker per hour.
func BenchmarkFleetPath(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	idle := 2 * time.Minute
	if v := os.Getenv("KANTO_CAN_FLEET_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KANTO_CAN_FLEET_IDLE: %v", err)
		}
		idle = d
	}
	kerneltest.VCAN(b, "fleetbus", 16)
	const ref = "docker.io/kanto-can/bench:1"
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(b)}
	k := kantotest.Start(b, kantotest.WithImage(ref, files))

	local := kerneltest.StartMosquitto(b, 0, fleetWait)
	hub := kerneltest.StartMosquitto(b, 0, fleetWait)
	backend := kerneltest.Subscribe(b, hub.URL(), "bench-backend", "on the hub", fleetWait, "#")
	kantotest.StartSuiteConnector(b, local.URL(), hub.URL(), fleetWait)
	kerneltest.StartDaemon(b, fleetWait, "--ditto", "--mqtt-broker="+local.URL())
	events := "event/" + kantotest.TenantID + "/" + kantotest.DeviceID
	feature := func(id string, ok func(value string) bool) func(kerneltest.Message) bool {
		return func(m kerneltest.Message) bool {
			var env struct {
				Path  string          `json:"path"`
				Value json.RawMessage `json:"value"`
			}
			json.Unmarshal([]byte(m.Payload), &env)
			return m.Topic == events && env.Path == "/features/"+id && (ok == nil || ok(string(env.Value)))
		}
	}
	backend.Await(b, 0, fleetWait, "CANManager", feature("CANManager", nil))

	var toHub, toEntrypoint []time.Duration
	lastBus := time.Time{}
	var names []string
	// Before Kanto's own clean-up, with the helper that copes with Kanto
	// missing an exit under load.
	b.Cleanup(func() {
		for _, name := range names {
			k.Remove(b, name)
		}
	})
	b.ResetTimer()
	for i := range fleetContainers {
		c := k.CreateJSON(b, map[string]any{
			"container_name": fmt.Sprintf("fleet-app-%d", i),
			"image":          map[string]any{"name": ref},
			"config": map[string]any{"env": []string{"KANTO_CAN=fleetbus:can0"},
				"cmd": []string{"/bin/sh", "-c", "echo running; exec /bin/busybox sleep 600"}},
			"hooks": []map[string]any{
				{"path": kc, "args": []string{"kanto-can", "hook", "prestart"}, "type": 0},
				{"path": kc, "args": []string{"kanto-can", "hook", "poststop"}, "type": 2},
			},
		})
		names = append(names, c.Name)
		// Pacing, not synchronisation: the debounce is not measured.
		time.Sleep(time.Until(lastBus.Add(1100 * time.Millisecond)))
		from := backend.Len()
		start := time.Now()
		k.Start(b, c.Name)
		m, _ := backend.Await(b, from, fleetWait, "CANBus:fleetbus with "+c.Name, feature("CANBus:fleetbus", func(v string) bool {
			return strings.Contains(v, `"name":"`+c.Name+`"`)
		}))
		toHub = append(toHub, m.At.Sub(start))
		lastBus = m.At
		k.WaitLog(b, c.ID, "running", 1, fleetWait)
		// The log is read after the fact: its line's time is what counts.
		toEntrypoint = append(toEntrypoint, entrypointAt(b, c.ID).Sub(start))
	}

	var rtt []time.Duration
	for i := range 20 {
		reqID := fmt.Sprintf("bench-%d", i)
		from := backend.Len()
		start := time.Now()
		sendOnHub(b, backend, reqID, "CANMetrics", "request", map[string]any{"frequency": 0})
		m, _ := backend.Await(b, from, fleetWait, "the reply", func(m kerneltest.Message) bool {
			return strings.HasPrefix(m.Topic, "command//"+kantotest.DeviceID+"/res/"+reqID+"/")
		})
		rtt = append(rtt, m.At.Sub(start))
	}

	// One cloud reconnect's worth: a refresh publishes every feature again.
	time.Sleep(1100 * time.Millisecond) // pacing: past the debounce
	from := backend.Len()
	sendOnHub(b, backend, "bench-refresh", "CANManager", "refresh", nil)
	republished := 0
	for _, id := range []string{"CANManager", "CANMetrics", "CANBus:fleetbus"} {
		m, _ := backend.Await(b, from, fleetWait, id+" again", feature(id, nil))
		republished += len(m.Topic) + len(m.Payload)
	}

	from = backend.Len()
	sendOnHub(b, backend, "bench-data", "CANMetrics", "request", map[string]any{"frequency": "1s"})
	data, _ := backend.Await(b, from, fleetWait, "metrics data", func(m kerneltest.Message) bool {
		return strings.Contains(m.Payload, `"/features/CANMetrics/outbox/messages/data"`)
	})
	sendOnHub(b, backend, "bench-data-stop", "CANMetrics", "request", map[string]any{"frequency": 0})
	backend.Await(b, from, fleetWait, "the stop's reply", func(m kerneltest.Message) bool {
		return strings.HasPrefix(m.Topic, "command//"+kantotest.DeviceID+"/res/bench-data-stop/")
	})

	// Idle: nothing changes for the window.
	from, logFrom := backend.Len(), local.Log.Len()
	start := time.Now()
	time.Sleep(idle) // the measurement window itself
	window := time.Since(start)
	idleBytes := 0
	for _, m := range backend.Since(from) {
		if m.Topic == events {
			idleBytes += len(m.Topic) + len(m.Payload)
		}
	}
	pings := 0
	for _, l := range strings.Split(local.Log.Text(), "\n")[logFrom:] {
		if strings.HasPrefix(l, "Received PINGREQ from kanto-can") {
			pings++
		}
	}
	b.StopTimer()

	perHour := func(n int) float64 { return float64(n) * float64(time.Hour) / float64(window) }
	b.ReportMetric(ms(median(toHub)), "start-to-hub-median-ms")
	b.ReportMetric(ms(slices.Max(toHub)), "start-to-hub-max-ms")
	b.ReportMetric(ms(median(toEntrypoint)), "start-to-entrypoint-median-ms")
	b.ReportMetric(ms(median(rtt)), "command-median-ms")
	b.ReportMetric(ms(slices.Max(rtt)), "command-max-ms")
	b.ReportMetric(float64(republished), "republish-bytes")
	b.ReportMetric(float64(len(data.Topic)+len(data.Payload)), "data-bytes")
	b.ReportMetric(float64(len(systemMetricsData)+len("e")), "system-metrics-data-bytes")
	b.ReportMetric(perHour(idleBytes)/1000, "idle-hub-KB/h")
	// A PINGREQ and its PINGRESP are 2 bytes each.
	b.ReportMetric(perHour(4*pings)/1000, "idle-local-keepalive-KB/h")
	b.Logf("%d containers; idle window %v: %d bytes on the hub, %d keep-alives to the local broker",
		fleetContainers, window.Round(time.Second), idleBytes, pings)
}

// systemMetricsData is one data message of Kanto's system-metrics with
// its default measurements (the SYSTEM originator: cpu.utilization, the
// four memory.* and the two io.*), in the format its source writes
// (eclipse-kanto/system-metrics, internal/metrics) with plausible values:
// what it sends per period once a backend asks.
const systemMetricsData = `{"topic":"org.example/gw1/things/live/messages/data","headers":{"content-type":"application/json","response-required":false},"path":"/features/Metrics/outbox/messages/data","value":{"snapshot":[{"originator":"SYSTEM","measurements":[{"id":"cpu.utilization","value":12.5},{"id":"memory.total","value":8242233344},{"id":"memory.available","value":6123456512},{"id":"memory.used","value":2118776832},{"id":"memory.utilization","value":25.7},{"id":"io.readBytes","value":123456789},{"id":"io.writeBytes","value":98765432}]}],"timestamp":1796600000}}`

// sendOnHub publishes a command for the device's thing on the hub, as a
// backend does.
func sendOnHub(b *testing.B, s *kerneltest.Subscriber, reqID, feature, subject string, value any) {
	b.Helper()
	env := map[string]any{"topic": "org.example/gw1/things/live/messages/" + subject,
		"headers": map[string]any{"correlation-id": reqID, "response-required": true},
		"path":    "/features/" + feature + "/inbox/messages/" + subject}
	if value != nil {
		env["value"] = value
	}
	p, _ := json.Marshal(env)
	s.Publish(b, "command//"+kantotest.DeviceID+"/req/"+reqID+"/"+subject, p, fleetWait)
}

// entrypointAt is when the container wrote its first log line (Kanto's
// json log has each line's time).
func entrypointAt(b *testing.B, id string) time.Time {
	b.Helper()
	raw, err := os.ReadFile(kantotest.LogPath(id))
	if err != nil {
		b.Fatal(err)
	}
	var line struct{ Time time.Time }
	first, _, _ := strings.Cut(string(raw), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		b.Fatalf("%s's log: %v: %s", id, err, first)
	}
	return line.Time
}
