package kerneltest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Message is an MQTT message a test's client received, and when.
type Message struct {
	Topic   string
	Payload string
	At      time.Time
}

// Subscriber is a test's MQTT client on a broker (a [Mosquitto]), which
// keeps every message of the topics it subscribed to, in the order the
// broker sent them, and subscribes again after each reconnect.
type Subscriber struct {
	Client mqtt.Client
	msgs   *Lines // each a Message as JSON
	where  string
}

// Subscribe connects a client with id clientID to the broker at url and
// subscribes it to topics (QoS 1); it returns once the subscription is
// made, within wait. It reconnects within 200 ms of a broker that comes
// back. where names it in the log of a failed Await.
func Subscribe(tb testing.TB, url, clientID, where string, wait time.Duration, topics ...string) *Subscriber {
	tb.Helper()
	s := &Subscriber{msgs: NewLines(), where: where}
	filters := map[string]byte{}
	for _, f := range topics {
		filters[f] = 1
	}
	subscribed := make(chan struct{}, 1)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).
		// In order: tests compare what came before and after.
		SetOrderMatters(true).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.SubscribeMultiple(filters, s.keep).Wait()
			select {
			case subscribed <- struct{}{}:
			default:
			}
		})
	s.Client = mqtt.NewClient(opts)
	s.Client.Connect()
	select {
	case <-subscribed:
	case <-time.After(wait):
		tb.Fatalf("%s did not connect to %s", clientID, url)
	}
	tb.Cleanup(func() { s.Client.Disconnect(100) })
	return s
}

func (s *Subscriber) keep(_ mqtt.Client, m mqtt.Message) {
	b, _ := json.Marshal(Message{Topic: m.Topic(), Payload: string(m.Payload()), At: time.Now()})
	s.msgs.Add(string(b))
}

// Len is how many messages arrived: an index to await from.
func (s *Subscriber) Len() int { return s.msgs.Len() }

// Message is message i.
func (s *Subscriber) Message(i int) Message {
	return decode(s.msgs.Slice(i, i+1)[0])
}

// Since is every message from index from on.
func (s *Subscriber) Since(from int) []Message {
	var all []Message
	for _, l := range s.msgs.Slice(from, s.msgs.Len()) {
		all = append(all, decode(l))
	}
	return all
}

// decode is a kept message back from its line.
func decode(line string) Message {
	var m Message
	json.Unmarshal([]byte(line), &m)
	return m
}

// Await returns the first message from index from on that ok accepts,
// and the index after it; after wait it fails the test with every message
// in the log. what names the message in the log.
func (s *Subscriber) Await(tb testing.TB, from int, wait time.Duration, what string, ok func(Message) bool) (Message, int) {
	tb.Helper()
	found := false
	defer func() {
		if !found {
			var b strings.Builder
			for _, m := range s.Since(0) {
				fmt.Fprintf(&b, "%s %s %s\n", m.At.Format("15:04:05.000"), m.Topic, m.Payload)
			}
			tb.Logf("%s, waiting for %s:\n%s", s.where, what, b.String())
		}
	}()
	l, i := s.msgs.AwaitIndex(tb, from, wait, func(l string) bool { return ok(decode(l)) })
	found = true
	m := decode(l)
	tb.Logf("%s, %s: %s %s", s.where, what, m.Topic, m.Payload)
	return m, i + 1
}

// Publish publishes payload on topic (QoS 1, not retained) and waits,
// within wait, until the broker has it.
func (s *Subscriber) Publish(tb testing.TB, topic string, payload []byte, wait time.Duration) {
	tb.Helper()
	if tok := s.Client.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		tb.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}
