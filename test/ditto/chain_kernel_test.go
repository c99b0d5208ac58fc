//go:build kernel

package ditto

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

// chain is the way from a device's features to the fleet, made of the real
// parts: Kanto's local mosquitto, where kanto-can-daemon --ditto publishes;
// Kanto's suite-connector; a second mosquitto as the hub, where Eclipse
// Hono's MQTT adapter would be; and a subscriber on the hub that plays the
// backend. A second subscriber watches the local broker.
type chain struct {
	local, hub *kerneltest.Mosquitto
	sc         *kantotest.SuiteConnector
	// backend has everything that reaches the hub.
	backend *kerneltest.Subscriber
	// device has the local events, suite-connector's cloud link status
	// and its thing-id answers.
	device *kerneltest.Subscriber
}

// startChain starts the brokers, the subscribers and suite-connector, on
// the local broker's port (0: any free one); the daemon is the test's.
func startChain(t *testing.T, localPort int) *chain {
	t.Helper()
	c := &chain{local: kerneltest.StartMosquitto(t, localPort, wait), hub: kerneltest.StartMosquitto(t, 0, wait)}
	c.backend = kerneltest.Subscribe(t, c.hub.URL(), "test-backend", "on the hub", wait, "#")
	c.device = kerneltest.Subscribe(t, c.local.URL(), "test-device", "on the local broker", wait,
		"e", "e/#", ditto.TopicRemoteStatus, ditto.TopicThingResponse)
	c.sc = kantotest.StartSuiteConnector(t, c.local.URL(), c.hub.URL(), wait)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the local mosquitto:\n%s", c.local.Log.Text())
		}
	})
	return c
}

// await awaits a message on the hub.
func (c *chain) await(t *testing.T, from int, what string, ok func(msg) bool) (msg, int) {
	t.Helper()
	return await(t, c.backend, from, what, ok)
}

// onHub is a twin command about a feature, as it arrives on the hub.
func onHub(id, command string, ok func(value map[string]any) bool) func(msg) bool {
	return featureOn(hubEvents, id, command, ok)
}

// onDevice is a twin command about a feature on the local broker.
func onDevice(id, command string, ok func(value map[string]any) bool) func(msg) bool {
	return featureOn(localEvents, id, command, ok)
}

// hubReply is the answer on the hub to request reqID with status:
// suite-connector relays the daemon's reply to command//<device>/res/....
func hubReply(reqID string, status int) func(msg) bool {
	return func(m msg) bool {
		return m.Topic == fmt.Sprintf("command//%s/res/%s/%d", kantotest.DeviceID, reqID, status) && m.Env.Status == status
	}
}

// send publishes a command for the device's thing on the hub, as a backend
// does, with correlation id "hub-<reqID>".
func (c *chain) send(t *testing.T, reqID, feature, subject string, value any) {
	t.Helper()
	env := map[string]any{"topic": "org.example/gw1/things/live/messages/" + subject,
		"headers": map[string]any{"correlation-id": "hub-" + reqID, "response-required": true, "content-type": "application/json"},
		"path":    "/features/" + feature + "/inbox/messages/" + subject}
	if value != nil {
		env["value"] = value
	}
	b, _ := json.Marshal(env)
	topic := "command//" + kantotest.DeviceID + "/req/" + reqID + "/" + subject
	c.backend.Publish(t, topic, b, wait)
}
