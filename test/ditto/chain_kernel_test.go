//go:build kernel

package ditto

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

// hub is the cloud's side: a second mosquitto where Eclipse Hono's MQTT
// adapter would be, and a subscriber that plays the backend.
type hub struct {
	broker *kerneltest.Mosquitto
	c      mqtt.Client
	msgs   inbox
}

func startHub(t *testing.T) *hub {
	t.Helper()
	h := &hub{broker: kerneltest.StartMosquitto(t, 0, wait), msgs: newInbox("on the hub")}
	connected := make(chan struct{}, 1)
	opts := mqtt.NewClientOptions().AddBroker(h.broker.URL()).SetClientID("test-backend").SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe("#", 1, h.msgs.collect).Wait()
			select {
			case connected <- struct{}{}:
			default:
			}
		})
	h.c = mqtt.NewClient(opts)
	h.c.Connect()
	select {
	case <-connected:
	case <-time.After(wait):
		t.Fatalf("the backend did not connect to the hub %s", h.broker.URL())
	}
	t.Cleanup(func() { h.c.Disconnect(100) })
	return h
}

// startSuiteConnector runs Kanto's suite-connector between the local
// broker and the hub, as device org.example:gw1 of tenant t1.
func startSuiteConnector(t *testing.T, local *kerneltest.Mosquitto, h *hub) {
	t.Helper()
	bin := filepath.Join(os.Getenv(kantotest.EnvDir), "suite-connector")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("suite-connector: %v (make setup unpacks it from KANTO_DIST)", err)
	}
	log := filepath.Join(t.TempDir(), "suite-connector.log")
	cmd := exec.Command(bin, "-address", h.broker.URL(), "-localAddress", local.URL(), "-deviceId", "org.example:gw1",
		"-tenantId", "t1", "-username", "u", "-password", "p", "-logFile", log, "-caCert", "/dev/null")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("suite-connector's log:\n%s", b)
		}
	})
}

// onHub is a twin command about a feature, as it arrives on the hub.
func onHub(id, command string, ok func(value map[string]any) bool) func(msg) bool {
	return featureOn("event/t1/org.example:gw1", id, command, ok)
}

// The real chain: kanto-can-daemon --ditto -> the local mosquitto -> Kanto's
// suite-connector -> a second mosquitto as the hub. The backend on the hub
// sees CANManager and CANBus:<bus> with the attachment, and a refresh it
// sends is answered 204 on the hub, with its correlation id.
func TestRealSuiteConnector(t *testing.T) {
	kerneltest.VCAN(t, "scbus", 16)
	local := kerneltest.StartMosquitto(t, 0, wait)
	h := startHub(t)
	startSuiteConnector(t, local, h)
	kerneltest.StartDaemon(t, wait, "--ditto", "--mqtt-broker="+local.URL(), "--ditto-poll=1s")
	kc := kerneltest.Binary(t)
	ns := kerneltest.NewNS(t)
	kerneltest.MustRun(t, kc, "attach", "--netns", ns.Path(), "--bus", "scbus")
	t.Cleanup(func() { kerneltest.Run(t, kc, "detach", "--netns", ns.Path()) })

	m, _ := h.msgs.await(t, 0, "CANManager", onHub("CANManager", "modify", nil))
	validate(t, "CANManager", m.Env.Value)
	m, _ = h.msgs.await(t, 0, "CANBus:scbus with the attachment", onHub("CANBus:scbus", "modify", func(v map[string]any) bool {
		n, _ := status(v)["attachmentCount"].(float64)
		return n == 1
	}))
	validate(t, "CANBus", m.Env.Value)

	from := h.msgs.Len()
	h.send(t, "r-hub", "CANManager", "refresh", nil)
	m, _ = h.msgs.await(t, from, "the refresh's 204", hubReply("r-hub", 204))
	if c, _ := m.Env.Headers["correlation-id"].(string); c != "hub-r-hub" {
		t.Errorf("the reply's correlation id is %q, want hub-r-hub: %s", c, m.Raw)
	}
	h.msgs.await(t, from, "CANBus:scbus again after the refresh", onHub("CANBus:scbus", "modify", nil))

	// Metrics asked for from the hub: data arrives there.
	from = h.msgs.Len()
	h.send(t, "r-metrics", "CANMetrics", "request", map[string]any{"frequency": "1s"})
	h.msgs.await(t, from, "the metrics request's 204", hubReply("r-metrics", 204))
	h.msgs.await(t, from, "metrics data", metricsData(nil))
}

// hubReply is the answer on the hub to request reqID with status: suite-
// connector relays the daemon's reply to command//<device>/res/....
func hubReply(reqID string, status int) func(msg) bool {
	return func(m msg) bool {
		return m.Topic == fmt.Sprintf("command//org.example:gw1/res/%s/%d", reqID, status) && m.Env.Status == status
	}
}

// send publishes a command for the device's thing on the hub, as a backend
// does.
func (h *hub) send(t *testing.T, reqID, feature, subject string, value any) {
	t.Helper()
	env := map[string]any{"topic": "org.example/gw1/things/live/messages/" + subject,
		"headers": map[string]any{"correlation-id": "hub-" + reqID, "response-required": true},
		"path":    "/features/" + feature + "/inbox/messages/" + subject}
	if value != nil {
		env["value"] = value
	}
	b, _ := json.Marshal(env)
	if tok := h.c.Publish("command//org.example:gw1/req/"+reqID+"/"+subject, 1, false, b); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("send %s on the hub: %v", subject, tok.Error())
	}
}
