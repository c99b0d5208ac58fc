package ditto

import (
	"encoding/json"
	"testing"
	"time"
)

func TestBusFeatureID(t *testing.T) {
	for in, want := range map[string]string{
		"can0": "CANBus:can0", "vcan_fd-1": "CANBus:vcan_fd-1", "can.1": "CANBus:can_2e1", "bus@x": "CANBus:bus_40x",
	} {
		if got := BusFeatureID(in); got != want {
			t.Errorf("BusFeatureID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderBool(t *testing.T) {
	for _, c := range []struct {
		v      any
		want   bool
		wantOK bool
	}{{true, true, true}, {false, false, true}, {"true", true, true}, {"false", false, true}, {" TRUE ", true, true}, {"maybe", false, false}, {nil, false, false}, {1.0, false, false}} {
		h := map[string]any{"response-required": c.v}
		if c.v == nil {
			h = map[string]any{}
		}
		if got, ok := headerBool(h, "response-required"); got != c.want || ok != c.wantOK {
			t.Errorf("%#v: %v %v", c.v, got, ok)
		}
	}
}

func TestTopics(t *testing.T) {
	th := Thing{ID: "org.example:gw1", Tenant: "t-demo"}
	for got, want := range map[string]string{
		th.dittoTopic("twin/commands/modify"): "org.example/gw1/things/twin/commands/modify",
		th.eventTopic():                       "e/t-demo/org.example:gw1",
		Thing{ID: "a:b"}.eventTopic():         "e",
		th.commandTopic():                     "command//org.example:gw1/req/#",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	for topic, want := range map[string][2]string{
		"command///req/r1/refresh":          {"", "r1"},
		"command//org.example:gw1/req/r2/x": {"org.example:gw1", "r2"},
		"command///req//refresh":            {"", ""},
	} {
		thing, req, ok := parseCommandTopic(topic)
		if !ok || thing != want[0] || req != want[1] {
			t.Errorf("%s: %q %q %v", topic, thing, req, ok)
		}
	}
	if _, _, ok := parseCommandTopic("command///res/r1/204"); ok {
		t.Error("a reply parsed as a request")
	}
	for _, id := range []string{"nocolon", ":x", "x:", "a/b:c", "a:b#"} {
		if ParseThingID(id) == nil {
			t.Errorf("thing id %q accepted", id)
		}
	}
	c := command{thingPart: "", reqID: "r1", env: Envelope{Topic: "org.example/gw1/things/live/messages/refresh",
		Headers: map[string]any{"correlation-id": "c1"}, Path: "/features/CANManager/inbox/messages/refresh"}}
	b, _ := json.Marshal(c.reply(204, nil))
	if want := `{"topic":"org.example/gw1/things/live/messages/refresh","headers":{"correlation-id":"c1","response-required":false},"path":"/features/CANManager/outbox/messages/refresh","status":204}`; string(b) != want {
		t.Errorf("reply %s\nwant  %s", b, want)
	}
	if c.replyTopic(404) != "command///res/r1/404" {
		t.Error(c.replyTopic(404))
	}
}

func TestParseFrequency(t *testing.T) {
	for in, want := range map[string]time.Duration{`"5s"`: 5 * time.Second, `5`: 5 * time.Second, `"2"`: 2 * time.Second, `"0s"`: 0, `0`: 0, `-1`: -time.Second, `"1m"`: time.Minute, `1.5`: 1500 * time.Millisecond} {
		if got, err := parseFrequency(json.RawMessage(in)); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{`"fast"`, `true`, `{}`} {
		if _, err := parseFrequency(json.RawMessage(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, bad := range []string{`{"frequency":"500ms"}`, `{}`, `{"frequency":"1s","filter":[{"originator":"["}]}`, `[1]`} {
		if _, err := parseMetricsRequest([]byte(bad)); err == nil {
			t.Errorf("request %s accepted", bad)
		}
	}
}

func TestParseBroker(t *testing.T) {
	for _, ok := range []string{"tcp://localhost:1883", "mqtt://10.0.0.1:1883", "ssl://broker:8883", "ws://[::1]:9001"} {
		if err := ParseBroker(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"localhost:1883", "tcp://localhost", "http://x:1", "tcp://:1883", "tcp://x:99999", "%"} {
		if ParseBroker(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, bad := range []string{"", "connector", "cloud"} {
		if ParseClientID(bad) == nil {
			t.Errorf("client id %q accepted", bad)
		}
	}
}
