package ditto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Topics of Kanto's local MQTT broker.
const (
	TopicThingRequest  = "edge/thing/request"
	TopicThingResponse = "edge/thing/response"
	TopicRemoteStatus  = "edge/connection/remote/status"
	// Commands for the root thing; commandPrefix+thing+"/req/#" are the
	// thing's own.
	TopicRootCommands = "command///req/#"
	commandPrefix     = "command//"
)

// Thing is the device's thing: its Ditto id (namespace:name) and the
// tenant, when suite-connector said it.
type Thing struct {
	ID     string
	Tenant string
}

// ParseThingID checks a Ditto thing id: namespace:name, both non-empty,
// no '/' (it would break the topics).
func ParseThingID(id string) error {
	ns, name, ok := strings.Cut(id, ":")
	switch {
	case !ok || ns == "" || name == "":
		return fmt.Errorf("thing id %q: want NAMESPACE:NAME", id)
	case strings.ContainsAny(id, "/# +"):
		return fmt.Errorf("thing id %q: '/', '#', '+' and spaces are not allowed", id)
	}
	return nil
}

// thingResponse is the answer on edge/thing/response.
type thingResponse struct {
	DeviceID string `json:"deviceId"`
	TenantID string `json:"tenantId"`
	PolicyID string `json:"policyId,omitempty"`
}

func parseThingResponse(payload []byte) (Thing, error) {
	var r thingResponse
	if err := json.Unmarshal(payload, &r); err != nil {
		return Thing{}, fmt.Errorf("%s: %w", TopicThingResponse, err)
	}
	if err := ParseThingID(r.DeviceID); err != nil {
		return Thing{}, fmt.Errorf("%s: deviceId: %w", TopicThingResponse, err)
	}
	return Thing{ID: r.DeviceID, Tenant: r.TenantID}, nil
}

// parseRemoteStatus reads the retained edge/connection/remote/status:
// known false when it is empty (cleared) or not understood.
func parseRemoteStatus(payload []byte) (connected, known bool) {
	var s struct {
		Connected *bool `json:"connected"`
	}
	if len(payload) == 0 || json.Unmarshal(payload, &s) != nil || s.Connected == nil {
		return false, false
	}
	return *s.Connected, true
}

// dittoTopic is the Ditto protocol topic of the thing: namespace/name/things/rest.
func (t Thing) dittoTopic(rest string) string {
	ns, name, _ := strings.Cut(t.ID, ":")
	return ns + "/" + name + "/things/" + rest
}

// eventTopic is the MQTT topic of the thing's events: e/<tenant>/<thing>
// when the tenant is known, else e.
func (t Thing) eventTopic() string {
	if t.Tenant == "" {
		return "e"
	}
	return "e/" + t.Tenant + "/" + t.ID
}

// commandTopic is where commands for the thing itself arrive.
func (t Thing) commandTopic() string { return commandPrefix + t.ID + "/req/#" }

// Envelope is a Ditto protocol message.
type Envelope struct {
	Topic   string          `json:"topic"`
	Headers map[string]any  `json:"headers,omitempty"`
	Path    string          `json:"path"`
	Value   json.RawMessage `json:"value,omitempty"`
	Status  int             `json:"status,omitempty"`
}

// modify is the twin command that sets a whole feature.
func modify(t Thing, feature string, value []byte, corr string) Envelope {
	return Envelope{
		Topic:   t.dittoTopic("twin/commands/modify"),
		Headers: map[string]any{"response-required": false, "correlation-id": corr},
		Path:    "/features/" + feature,
		Value:   value,
	}
}

// remove is the twin command that deletes a feature.
func remove(t Thing, feature, corr string) Envelope {
	return Envelope{
		Topic:   t.dittoTopic("twin/commands/delete"),
		Headers: map[string]any{"response-required": false, "correlation-id": corr},
		Path:    "/features/" + feature,
	}
}

// liveData is a feature's outbox message "data" (Metrics contract).
func liveData(t Thing, feature string, value []byte) Envelope {
	return Envelope{
		Topic:   t.dittoTopic("live/messages/data"),
		Headers: map[string]any{"content-type": "application/json", "response-required": false},
		Path:    "/features/" + feature + "/outbox/messages/data",
		Value:   value,
	}
}

// headerBool reads a boolean header, sent as a JSON bool or as a string
// ("true", "false"); ok false when absent or neither.
func headerBool(h map[string]any, key string) (v, ok bool) {
	switch x := h[key].(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		return b, err == nil
	}
	return false, false
}

// headerString reads a string header.
func headerString(h map[string]any, key string) string {
	s, _ := h[key].(string)
	return s
}

// command is a request that arrived on a command topic.
type command struct {
	thingPart string // between "command//" and "/req/": "" for the root thing
	reqID     string // "" for one-way messages
	env       Envelope
	feature   string // from the envelope's path
	subject   string
}

// parseCommandTopic splits command//<thing>/req/<reqId>/<subject>.
func parseCommandTopic(topic string) (thingPart, reqID string, ok bool) {
	rest, ok := strings.CutPrefix(topic, commandPrefix)
	if !ok {
		return "", "", false
	}
	thingPart, rest, ok = strings.Cut(rest, "/req/")
	if !ok {
		return "", "", false
	}
	reqID, _, _ = strings.Cut(rest, "/")
	return thingPart, reqID, true
}

// parseInboxPath splits /features/<id>/inbox/messages/<subject>.
func parseInboxPath(path string) (feature, subject string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/features/")
	if !ok {
		return "", "", false
	}
	feature, subject, ok = strings.Cut(rest, "/inbox/messages/")
	if !ok || feature == "" || subject == "" || strings.Contains(feature, "/") {
		return "", "", false
	}
	return feature, subject, true
}

// replyTopic is where the answer to c with status goes.
func (c command) replyTopic(status int) string {
	return commandPrefix + c.thingPart + "/res/" + c.reqID + "/" + strconv.Itoa(status)
}

// reply is the answer to c: its topic, its path with inbox -> outbox, its
// correlation id, status and value (an error's when status >= 400).
func (c command) reply(status int, value []byte) Envelope {
	h := map[string]any{"response-required": false}
	if corr := headerString(c.env.Headers, "correlation-id"); corr != "" {
		h["correlation-id"] = corr
	}
	if value != nil {
		h["content-type"] = "application/json"
	}
	return Envelope{
		Topic:   c.env.Topic,
		Headers: h,
		Path:    strings.Replace(c.env.Path, "/inbox/", "/outbox/", 1),
		Value:   value,
		Status:  status,
	}
}

// Errors of commands, as Ditto names them.
const (
	errParameterInvalid = "messages:parameter.invalid"
	errSubjectNotFound  = "messages:subject.notfound"
	errExecutionFailed  = "messages:execution.failed"
)

// errorValue is a failed command's reply value.
func errorValue(status int, code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"status": status, "error": code, "message": message})
	return b
}
