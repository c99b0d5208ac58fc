//go:build kernel

package ditto

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

// Where suite-connector puts the thing's events: locally the daemon
// publishes on e/<tenant>/<device>, the hub gets them on
// event/<tenant>/<device>.
var (
	localEvents = "e/" + kantotest.TenantID + "/" + kantotest.DeviceID
	hubEvents   = "event/" + kantotest.TenantID + "/" + kantotest.DeviceID
)

// msg is a message a test's subscriber received, with its Ditto envelope.
type msg struct {
	kerneltest.Message
	Env ditto.Envelope
}

func parse(m kerneltest.Message) msg {
	x := msg{Message: m}
	json.Unmarshal([]byte(m.Payload), &x.Env)
	return x
}

// await returns the first message on s from index from on that ok
// accepts, and the index after it.
func await(t *testing.T, s *kerneltest.Subscriber, from int, what string, ok func(msg) bool) (msg, int) {
	t.Helper()
	m, next := s.Await(t, from, wait, what, func(m kerneltest.Message) bool { return ok(parse(m)) })
	return parse(m), next
}

// since is every message on s from index from on.
func since(s *kerneltest.Subscriber, from int) []msg {
	var all []msg
	for _, m := range s.Since(from) {
		all = append(all, parse(m))
	}
	return all
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

// remoteStatus is suite-connector's retained cloud link status, on the
// local broker.
func remoteStatus(connected bool) func(msg) bool {
	return func(m msg) bool {
		return m.Topic == ditto.TopicRemoteStatus && strings.Contains(m.Payload, fmt.Sprintf(`"connected":%v`, connected))
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
	schematest.Validate(t, "docs/ditto/"+name+".schema.json", value)
}
