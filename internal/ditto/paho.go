package ditto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MQTT defaults: Kanto's local broker, and how the client behaves.
const (
	DefaultBroker   = "tcp://localhost:1883"
	DefaultClientID = "kanto-can"
	keepAlive       = 25 * time.Second
	opTimeout       = 10 * time.Second
)

// ParseBroker checks a broker URL: tcp://, mqtt://, ssl://, tls://,
// mqtts://, ws:// or wss://, with a host and a port.
func ParseBroker(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("%q: want tcp://HOST:PORT (or mqtt, ssl, tls, mqtts, ws, wss)", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%q: want a port (1-65535), as in tcp://localhost:1883", s)
	}
	return nil
}

// ParseClientID checks an MQTT client id: not empty, and not one that
// suite-connector reserves (connector, cloud: it skips their messages).
func ParseClientID(id string) error {
	switch id {
	case "":
		return errors.New("empty")
	case "connector", "cloud":
		return fmt.Errorf("%q is suite-connector's own (its messages are not relayed)", id)
	}
	return nil
}

// MQTTConfig is the connection to the local broker.
type MQTTConfig struct {
	Broker   string // DefaultBroker when ""
	ClientID string // DefaultClientID when ""
	Log      *slog.Logger
}

// pahoClient is Client over Eclipse Paho.
type pahoClient struct{ c mqtt.Client }

func (p pahoClient) Subscribe(topics ...string) error {
	filters := make(map[string]byte, len(topics))
	for _, t := range topics {
		filters[t] = 1
	}
	return wait(p.c.SubscribeMultiple(filters, nil))
}

func (p pahoClient) Publish(topic string, payload []byte) error {
	if !p.c.IsConnectionOpen() {
		return errors.New("not connected")
	}
	return wait(p.c.Publish(topic, 1, false, payload))
}

func wait(t mqtt.Token) error {
	if !t.WaitTimeout(opTimeout) {
		return errors.New("mqtt: no answer from the broker")
	}
	return t.Error()
}

// Run runs an agent with cfg over an MQTT connection to m.Broker until ctx
// is done. It keeps trying to connect (the broker may start later) and
// reconnects whenever the connection is lost; each connect subscribes
// again and asks for the thing id again.
func Run(ctx context.Context, a *Agent, m MQTTConfig) error {
	if m.Broker == "" {
		m.Broker = DefaultBroker
	}
	if m.ClientID == "" {
		m.ClientID = DefaultClientID
	}
	if err := ParseBroker(m.Broker); err != nil {
		return fmt.Errorf("mqtt broker %w", err)
	}
	log := m.Log
	if log == nil {
		log = slog.Default()
	}
	opts := mqtt.NewClientOptions().
		AddBroker(m.Broker).
		SetClientID(m.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(keepAlive).
		SetConnectTimeout(opTimeout).
		SetWriteTimeout(opTimeout).
		// Handlers in goroutines of their own: one that waits for the
		// agent must not hold up the acknowledgements it waits for.
		SetOrderMatters(false).
		SetOnConnectHandler(func(mqtt.Client) { a.Connected() }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { a.Disconnected(err) }).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { a.Message(msg.Topic(), msg.Payload()) })
	c := mqtt.NewClient(opts)
	log.Info("ditto: connecting", "broker", m.Broker, "client", m.ClientID)
	c.Connect() // with ConnectRetry it completes once connected; the agent hears it
	defer c.Disconnect(250)
	return a.Run(ctx, pahoClient{c})
}
