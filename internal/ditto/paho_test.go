package ditto

import (
	"context"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// Over a real broker: the agent asks for the thing id, publishes its
// features on the answer, and after the broker restarts asks again and
// publishes them again.
func TestPahoOverMosquitto(t *testing.T) {
	m := kerneltest.StartMosquitto(t, 0, timeout)
	broker := m.URL()
	got := make(chan string, 100)
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("test-connector").SetConnectRetry(true).
		SetAutoReconnect(true).SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(time.Second).SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe("e/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) }).Wait()
			c.Subscribe(TopicThingRequest, 1, func(c mqtt.Client, _ mqtt.Message) {
				c.Publish(TopicThingResponse, 0, false, thingAnswer)
			}).Wait()
			// Unprompted too, as suite-connector on each connect: the
			// agent may have asked before this subscribed.
			c.Publish(TopicThingResponse, 0, false, thingAnswer)
		})
	conn := mqtt.NewClient(opts)
	conn.Connect().Wait()
	defer conn.Disconnect(100)

	k := &kernel{st: sample()}
	a := New(Config{Read: k.read, SysModule: t.TempDir(), Version: "v", Debounce: 100 * time.Millisecond, Poll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, a, MQTTConfig{Broker: broker}) }()
	defer func() { cancel(); <-done }()

	// await reads publishes until every feature of want came.
	await := func(want ...string) {
		t.Helper()
		deadline := time.After(3 * timeout)
		for len(want) > 0 {
			select {
			case m := <-got:
				for i, w := range want {
					if strings.Contains(m, `"path":"/features/`+w+`"`) {
						if !strings.HasPrefix(m, "e/t-demo/org.example:gw1 ") {
							t.Errorf("published on %s", m)
						}
						want = append(want[:i], want[i+1:]...)
						break
					}
				}
			case <-deadline:
				t.Fatalf("%v not published", want)
			}
		}
	}
	await("CANManager", "CANBus:can0", "CANBus:vcan0", "CANMetrics")

	m.Stop()
	from := m.Log.Len()
	m.Start(t)
	// The broker's log witnesses the request, whoever connects first.
	m.Log.Await(t, from, 3*timeout, func(l string) bool {
		return strings.Contains(l, "Received PUBLISH from kanto-can") && strings.Contains(l, TopicThingRequest)
	})
	await("CANManager", "CANBus:can0", "CANBus:vcan0", "CANMetrics")
}
