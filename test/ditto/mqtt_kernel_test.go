//go:build kernel

package ditto

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// msg is a message the stand-in received.
type msg struct {
	Topic string
	Raw   string
	Env   ditto.Envelope
}

// inbox collects what a test's MQTT client receives, each message as JSON
// of msg; where names the client in the log of a failed await.
type inbox struct {
	*kerneltest.Lines
	where string
}

func newInbox(where string) inbox { return inbox{Lines: kerneltest.NewLines(), where: where} }

// collect is an MQTT message handler that keeps every message.
func (in inbox) collect(_ mqtt.Client, m mqtt.Message) {
	e := msg{Topic: m.Topic(), Raw: string(m.Payload())}
	json.Unmarshal(m.Payload(), &e.Env)
	b, _ := json.Marshal(e)
	in.Add(string(b))
}

// await returns the first message from index from on that ok accepts,
// and the index after it.
func (in inbox) await(t *testing.T, from int, what string, ok func(msg) bool) (msg, int) {
	t.Helper()
	var m msg
	found := false
	defer func() {
		if !found {
			t.Logf("%s:\n%s", in.where, in.Text())
		}
	}()
	_, i := in.AwaitIndex(t, from, wait, func(s string) bool {
		var x msg
		json.Unmarshal([]byte(s), &x)
		if ok(x) {
			m = x
			return true
		}
		return false
	})
	found = true
	t.Logf("%s, %s: %s %s", in.where, what, m.Topic, m.Raw)
	return m, i + 1
}

// connector is a stand-in for Kanto's suite-connector: it answers
// edge/thing/request (and sends the answer unprompted on each connect, as
// suite-connector does on each cloud reconnect), publishes the retained
// remote status, and collects the events (e, e/#) and command replies.
type connector struct {
	c       mqtt.Client
	msgs    inbox
	answer  string
	mu      sync.Mutex
	remote  bool
	thingRq int
}

const thingAnswer = `{"deviceId":"org.example:gw1","tenantId":"t-demo","policyId":"org.example:gw1"}`

func startConnector(t *testing.T, b *kerneltest.Mosquitto) *connector {
	t.Helper()
	k := &connector{msgs: newInbox("messages seen by the stand-in"), answer: thingAnswer, remote: true}
	connected := make(chan struct{}, 1)
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("test-connector").SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.SubscribeMultiple(map[string]byte{"e": 1, "e/#": 1, "command///res/#": 1, "command//org.example:gw1/res/#": 1}, k.msgs.collect).Wait()
			c.Subscribe(ditto.TopicThingRequest, 1, func(c mqtt.Client, _ mqtt.Message) {
				k.mu.Lock()
				k.thingRq++
				k.mu.Unlock()
				c.Publish(ditto.TopicThingResponse, 0, false, k.answer)
			}).Wait()
			k.mu.Lock()
			remote := k.remote
			k.mu.Unlock()
			k.setRemote(c, remote)
			c.Publish(ditto.TopicThingResponse, 0, false, k.answer)
			select {
			case connected <- struct{}{}:
			default:
			}
		})
	k.c = mqtt.NewClient(opts)
	k.c.Connect()
	select {
	case <-connected:
	case <-time.After(wait):
		t.Fatalf("the stand-in connector did not connect to %s", b.URL())
	}
	t.Cleanup(func() { k.c.Disconnect(100) })
	return k
}

// setRemote publishes the retained cloud link status.
func (k *connector) setRemote(c mqtt.Client, up bool) {
	k.mu.Lock()
	k.remote = up
	k.mu.Unlock()
	s := fmt.Sprintf(`{"connected":%v,"timestamp":%d}`, up, time.Now().Unix())
	if !up {
		s = fmt.Sprintf(`{"connected":false,"timestamp":%d,"cause":"CONNECTION_CLOSED"}`, time.Now().Unix())
	}
	c.Publish(ditto.TopicRemoteStatus, 1, true, s).Wait()
}

// send publishes a command for the root thing.
func (k *connector) send(t *testing.T, reqID, feature, subject string, headers map[string]any, value any) {
	t.Helper()
	env := map[string]any{"topic": "org.example/gw1/things/live/messages/" + subject, "headers": headers,
		"path": "/features/" + feature + "/inbox/messages/" + subject}
	if value != nil {
		env["value"] = value
	}
	b, _ := json.Marshal(env)
	if tok := k.c.Publish("command///req/"+reqID+"/"+subject, 1, false, b); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("send %s: %v", subject, tok.Error())
	}
}

// await is the stand-in's inbox's await.
func (k *connector) await(t *testing.T, from int, what string, ok func(msg) bool) (msg, int) {
	t.Helper()
	return k.msgs.await(t, from, what, ok)
}

// feature is a twin command about a feature, on the thing's event topic
// as the stand-in answers the thing id.
func feature(id, command string, ok func(value map[string]any) bool) func(msg) bool {
	return featureOn("e/t-demo/org.example:gw1", id, command, ok)
}

// featureOn is a twin command about a feature, on topic.
func featureOn(topic, id, command string, ok func(value map[string]any) bool) func(msg) bool {
	return func(m msg) bool {
		if m.Topic != topic || m.Env.Path != "/features/"+id ||
			m.Env.Topic != "org.example/gw1/things/twin/commands/"+command {
			return false
		}
		if ok == nil {
			return true
		}
		var v map[string]any
		json.Unmarshal(m.Env.Value, &v)
		return ok(v)
	}
}

// status is a feature value's properties.status.
func status(v map[string]any) map[string]any {
	p, _ := v["properties"].(map[string]any)
	s, _ := p["status"].(map[string]any)
	return s
}

// validate checks a value against docs/ditto/<name>.schema.json.
func validate(t *testing.T, name string, value []byte) {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile(filepath.Join("..", "..", "docs", "ditto", name+".schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(value)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s: %s: %v", name, value, err)
	}
}
