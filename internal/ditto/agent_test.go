package ditto

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

const (
	thingAnswer = `{"deviceId":"org.example:gw1","tenantId":"t-demo","policyId":"org.example:gw1"}`
	events      = "e/t-demo/org.example:gw1"
	timeout     = 5 * time.Second
)

// pub is one message the agent published.
type pub struct {
	topic string
	env   Envelope
	raw   []byte
	at    time.Time
}

// fakeClient records what the agent subscribes and publishes.
type fakeClient struct {
	mu   sync.Mutex
	subs []string
	pubs chan pub
	down bool // Publish fails
	// failed counts the publishes that failed
	failed int
}

func (f *fakeClient) Subscribe(topics ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, topics...)
	return nil
}

func (f *fakeClient) Publish(topic string, payload []byte) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		f.mu.Lock()
		f.failed++
		f.mu.Unlock()
		return fmt.Errorf("not connected")
	}
	p := pub{topic: topic, raw: payload, at: time.Now()}
	if topic != TopicThingRequest {
		if err := json.Unmarshal(payload, &p.env); err != nil {
			return fmt.Errorf("published %s: %v", payload, err)
		}
	}
	f.pubs <- p
	return nil
}

func (f *fakeClient) subscribed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs)
}

// kernel is the state the agent reads, changed by tests.
type kernel struct {
	mu  sync.Mutex
	st  State
	err error
}

func (k *kernel) read() (State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.st, k.err
}

func (k *kernel) set(st State) {
	k.mu.Lock()
	k.st = st
	k.mu.Unlock()
}

// sample is a kernel with two buses (a controller, a vcan) and three
// attachments, one with filters and a rate limit, and a bus that is gone.
func sample() State {
	return State{
		Buses: []attach.HostBusStatus{
			{Name: "can0", Index: 3, Kind: "can", Up: true, State: "error-active", Bitrate: 500000, MTU: 16, Attachments: 2,
				Counters: &attach.BusCounters{RxFrames: 1234, TxFrames: 56, RxBytes: 9872},
				Errors:   &attach.BusErrors{TxErrorCounter: ptr[uint16](8), RxErrorCounter: ptr[uint16](0), BusErrors: 3}},
			{Name: "gone0", Index: 0, Attachments: 1},
			{Name: "vcan0", Index: 5, Kind: "vcan", Up: true, FD: true, MTU: 72, Attachments: 1},
		},
		Attachments: []attach.Attachment{
			{Target: "netns:1", Label: "container app", Container: "ctr-1", Name: "app", HostBus: "can0", HostBusIndex: 3, Inside: "can0",
				Rules:  []attach.RuleState{{Direction: "rx", Filter: "7E8", Handled: 5}, {Direction: "tx", Filter: "7DF", Handled: 3}},
				TxRate: &attach.RateState{FramesPerSecond: 100, Burst: 10, Passed: 3}},
			{Target: "netns:2", Label: "pid 42", HostBus: "can0", HostBusIndex: 3, Inside: "vcan9",
				Rules: []attach.RuleState{{Direction: "rx", Filter: "all", Handled: 7}}},
			{Target: "netns:1", Label: "container app", Container: "ctr-1", Name: "app", HostBus: "vcan0", HostBusIndex: 5, Inside: "vcan0",
				Rules: []attach.RuleState{{Direction: "rx", Filter: "all"}, {Direction: "rx", FD: true, Filter: "all"}, {Direction: "tx", Filter: "all"}, {Direction: "tx", FD: true, Filter: "all"}}},
			{Target: "netns:3", Label: "container old", Container: "ctr-3", HostBus: "gone0", Inside: "can0"},
		},
	}
}

func ptr[T any](v T) *T { return &v }

type harness struct {
	t      *testing.T
	a      *Agent
	c      *fakeClient
	k      *kernel
	cancel context.CancelFunc
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	k := &kernel{st: sample()}
	mods := t.TempDir()
	for _, m := range []string{"can", "can_raw", "can_gw", "vxcan"} {
		os.Mkdir(filepath.Join(mods, m), 0o755)
	}
	if cfg.Read == nil {
		cfg.Read = k.read
	}
	cfg.SysModule, cfg.Version = mods, "v-test"
	if cfg.Debounce == 0 {
		cfg.Debounce = 300 * time.Millisecond
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Hour // tests kick
	}
	h := &harness{t: t, a: New(cfg), c: &fakeClient{pubs: make(chan pub, 1000)}, k: k}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.a.Run(ctx, h.c); close(done) }()
	h.cancel = cancel
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// next returns the next publish, failing after wait.
func (h *harness) next() pub {
	h.t.Helper()
	select {
	case p := <-h.c.pubs:
		return p
	case <-time.After(timeout):
		h.t.Fatal("nothing published")
	}
	return pub{}
}

// none asserts that nothing is published within d.
func (h *harness) none(d time.Duration) {
	h.t.Helper()
	select {
	case p := <-h.c.pubs:
		h.t.Fatalf("published %s: %s", p.topic, p.raw)
	case <-time.After(d):
	}
}

// features reads n feature publishes (modify or delete), by path.
func (h *harness) features(n int) map[string]pub {
	h.t.Helper()
	got := map[string]pub{}
	for len(got) < n {
		p := h.next()
		if !strings.Contains(p.env.Topic, "/twin/commands/") {
			h.t.Fatalf("published %s: %s, want a twin command", p.topic, p.raw)
		}
		got[p.env.Path] = p
	}
	return got
}

// online connects and answers the thing id; it returns the first
// publishes of every feature.
func (h *harness) online() map[string]pub {
	h.t.Helper()
	h.a.Connected()
	if p := h.next(); p.topic != TopicThingRequest {
		h.t.Fatalf("first publish on %s, want %s", p.topic, TopicThingRequest)
	}
	h.a.Message(TopicThingResponse, []byte(thingAnswer))
	return h.features(4)
}

// command sends a command and returns its reply (or nil, when none is
// expected within a short while).
func (h *harness) command(topic string, env map[string]any) {
	h.t.Helper()
	b, _ := json.Marshal(env)
	h.a.Message(topic, b)
}

func TestPublishesFeaturesOnTheThingAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		got := h.online()
		for _, want := range []string{TopicThingResponse, TopicRemoteStatus, TopicRootCommands} {
			if !slices.Contains(h.c.subscribed(), want) {
				t.Errorf("subscribed %v, want %s", h.c.subscribed(), want)
			}
		}
		if !slices.Contains(h.c.subscribed(), "command//org.example:gw1/req/#") {
			t.Errorf("subscribed %v, want the thing's command topic", h.c.subscribed())
		}
		paths := []string{"/features/CANBus:can0", "/features/CANBus:vcan0", "/features/CANManager", "/features/CANMetrics"}
		for _, path := range paths {
			p, ok := got[path]
			if !ok {
				t.Fatalf("no %s in %v", path, keys(got))
			}
			if p.topic != events || p.env.Topic != "org.example/gw1/things/twin/commands/modify" {
				t.Errorf("%s: topic %s, envelope topic %s", path, p.topic, p.env.Topic)
			}
			if rr, ok := p.env.Headers["response-required"].(bool); !ok || rr {
				t.Errorf("%s: headers %v", path, p.env.Headers)
			}
			if c, _ := p.env.Headers["correlation-id"].(string); len(c) != 36 {
				t.Errorf("%s: correlation-id %q", path, c)
			}
		}
		var bus struct {
			Properties struct{ Status BusStatus } `json:"properties"`
		}
		if err := json.Unmarshal(got["/features/CANBus:can0"].env.Value, &bus); err != nil {
			t.Fatal(err)
		}
		s := bus.Properties.Status
		app := s.Attachments["ctr-1"]
		if s.Bus != "can0" || s.State != "error-active" || s.Bitrate != 500000 || s.AttachmentCount != 2 || len(s.Attachments) != 2 ||
			app.Name != "app" || app.Direction != "both" || !slices.Equal(app.RxFilters, []string{"7E8"}) || !slices.Equal(app.TxFilters, []string{"7DF"}) ||
			app.TxRateLimit == nil || app.TxRateLimit.FramesPerSecond != 100 || app.State != "routed" ||
			s.Attachments["netns:2"].Label != "pid 42" || s.Attachments["netns:2"].Direction != "rx" {
			t.Errorf("CANBus:can0: %s", got["/features/CANBus:can0"].env.Value)
		}
		if s.ErrorCounters == nil || s.ErrorCounters.Tx != 8 || s.ErrorCounters.Rx != 0 {
			t.Errorf("CANBus:can0 error counters: %s", got["/features/CANBus:can0"].env.Value)
		}
		if v := string(got["/features/CANBus:can0"].env.Value); strings.Contains(v, "handled") || strings.Contains(v, "1234") || strings.Contains(v, "9872") {
			t.Errorf("counters in a twin feature: %s", got["/features/CANBus:can0"].env.Value)
		}
		var mgr struct {
			Properties struct{ Status ManagerStatus } `json:"properties"`
		}
		if err := json.Unmarshal(got["/features/CANManager"].env.Value, &mgr); err != nil {
			t.Fatal(err)
		}
		m := mgr.Properties.Status
		if m.Version != "v-test" || !m.Modules["can_gw"] || m.Modules["vcan"] || !slices.Equal(m.Buses, []string{"can0", "vcan0"}) ||
			!slices.Equal(m.MissingBuses, []string{"gone0"}) || m.Attachments != 4 {
			t.Errorf("CANManager: %s", got["/features/CANManager"].env.Value)
		}
		for path, schema := range map[string]string{"/features/CANBus:can0": "CANBus", "/features/CANBus:vcan0": "CANBus",
			"/features/CANManager": "CANManager", "/features/CANMetrics": "CANMetrics"} {
			validate(t, schema, got[path].env.Value)
		}
		// Nothing changed but counters: a kick publishes nothing.
		st := sample()
		st.Buses[0].Counters.RxFrames += 100
		st.Buses[0].Errors.BusErrors++
		st.Attachments[0].Rules[0].Handled += 100
		st.Attachments[0].TxRate.Dropped++
		h.k.set(st)
		h.a.Kick()
		h.none(500 * time.Millisecond)
	})
}

func keys(m map[string]pub) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Nothing is published before the thing id is known; with a fixed id,
// every connect publishes everything without asking.
func TestThingID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		h.a.Kick()
		h.none(300 * time.Millisecond)
		h.a.Connected()
		if p := h.next(); p.topic != TopicThingRequest {
			t.Fatalf("published on %s before the thing id", p.topic)
		}
		h.none(300 * time.Millisecond)
		h.a.Message(TopicThingResponse, []byte(`{"deviceId":"nocolon"}`))
		h.none(300 * time.Millisecond)

		f := start(t, Config{ThingID: "org.example:fixed"})
		f.a.Connected()
		got := f.features(4)
		if p := got["/features/CANManager"]; p.topic != "e" || p.env.Topic != "org.example/fixed/things/twin/commands/modify" {
			t.Errorf("fixed thing id: %s %s", p.topic, p.env.Topic)
		}
		if slices.Contains(f.c.subscribed(), TopicThingRequest) {
			t.Error("asked for the thing id although it is fixed")
		}
		// A reconnect publishes everything again (after the debounce).
		f.a.Disconnected(fmt.Errorf("broker gone"))
		f.a.Connected()
		if got := f.features(4); len(got) != 4 {
			t.Errorf("after a reconnect: %v", keys(got))
		}
	})
}

// Every thing-id answer (the cloud link came back) publishes everything
// again; a reconnect asks for the thing id again.
func TestRepublishOnThingAnswerAndReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		first := h.online()
		h.a.Message(TopicThingResponse, []byte(thingAnswer))
		again := h.features(4)
		for path, p := range again {
			if string(p.env.Value) != string(first[path].env.Value) {
				t.Errorf("%s changed: %s", path, p.env.Value)
			}
			if d := p.at.Sub(first[path].at); d != 300*time.Millisecond {
				t.Errorf("%s published again after %v: the debounce is 300ms", path, d)
			}
		}
		h.a.Disconnected(fmt.Errorf("broker restarted"))
		h.a.Connected()
		if p := h.next(); p.topic != TopicThingRequest {
			t.Fatalf("after a reconnect: published %s, want the thing request", p.topic)
		}
		h.a.Message(TopicThingResponse, []byte(thingAnswer))
		if got := h.features(4); len(got) != 4 {
			t.Errorf("after a reconnect: %v", keys(got))
		}
		// A new thing id: start over under the new id.
		h.a.Message(TopicThingResponse, []byte(`{"deviceId":"org.other:gw2","tenantId":"t2"}`))
		for _, p := range h.features(4) {
			if p.topic != "e/t2/org.other:gw2" || !strings.HasPrefix(p.env.Topic, "org.other/gw2/") {
				t.Errorf("new thing: %s %s", p.topic, p.env.Topic)
			}
		}
	})
}

// Changes are published at most once per feature per debounce period;
// a bus that is gone (or has no attachment left) has its feature deleted.
func TestDebounceAndDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{Debounce: 500 * time.Millisecond})
		first := h.online()
		st := sample()
		st.Buses[0].State = "error-warning"
		h.k.set(st)
		h.a.Kick()
		st = sample()
		st.Buses[0].State = "bus-off"
		h.k.set(st)
		synctest.Wait() // the first change taken: the second comes in the same period
		h.a.Kick()
		p := h.next()
		if p.env.Path != "/features/CANBus:can0" || !strings.Contains(string(p.env.Value), `"state":"bus-off"`) {
			t.Fatalf("published %s %s, want CANBus:can0 bus-off once", p.env.Path, p.env.Value)
		}
		if d := p.at.Sub(first["/features/CANBus:can0"].at); d != 500*time.Millisecond {
			t.Errorf("published again after %v, the debounce is 500ms", d)
		}
		h.none(700 * time.Millisecond)

		// vcan0 goes away: its feature is deleted, CANManager says so.
		st.Buses[2].Index = 0
		h.k.set(st)
		h.a.Kick()
		got := h.features(2)
		del := got["/features/CANBus:vcan0"]
		if del.env.Topic != "org.example/gw1/things/twin/commands/delete" || del.env.Value != nil || del.topic != events {
			t.Errorf("delete: %s %s", del.topic, del.raw)
		}
		if v := string(got["/features/CANManager"].env.Value); !strings.Contains(v, `"missingBuses":["gone0","vcan0"]`) {
			t.Errorf("CANManager after vcan0 went: %s", v)
		}
		// The last attachment of can0 goes: deleted too.
		st.Buses = st.Buses[:2]
		st.Attachments = st.Attachments[3:]
		h.k.set(st)
		h.a.Kick()
		got = h.features(2)
		if got["/features/CANBus:can0"].env.Topic != "org.example/gw1/things/twin/commands/delete" {
			t.Errorf("can0 without attachments: %s", got["/features/CANBus:can0"].raw)
		}
		// A publish that fails is tried again.
		h.c.mu.Lock()
		h.c.down = true
		h.c.mu.Unlock()
		h.k.set(sample())
		h.a.Kick()
		synctest.Wait() // the kick taken while publishing fails
		h.c.mu.Lock()
		h.c.down = false
		// One failure ends the round: the other features do not wait for a
		// broker that is gone.
		if h.c.failed != 1 {
			t.Errorf("%d publishes failed in one round, want 1", h.c.failed)
		}
		h.c.mu.Unlock()
		if got := h.features(3); len(got) != 3 {
			t.Errorf("after a failed publish: %v", keys(got))
		}
	})
}

// Commands: refresh 204 and everything again, unknown subjects 404,
// bad values 400; replies only when asked for.
func TestCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{Debounce: 100 * time.Millisecond})
		h.online()
		type reply struct {
			topic  string
			status int
			err    string
		}
		cmd := func(subject, feature string, headers map[string]any, value any) map[string]any {
			env := map[string]any{"topic": "org.example/gw1/things/live/messages/" + subject, "headers": headers,
				"path": "/features/" + feature + "/inbox/messages/" + subject}
			if value != nil {
				env["value"] = value
			}
			return env
		}
		hdr := map[string]any{"correlation-id": "corr-1", "response-required": true, "content-type": "application/json"}
		for _, c := range []struct {
			name  string
			topic string
			env   map[string]any
			want  *reply
		}{
			{"unknown subject", "command///req/r1/attach", cmd("attach", "CANManager", hdr, map[string]any{"bus": "can0"}),
				&reply{"command///res/r1/404", 404, errSubjectNotFound}},
			{"unknown subject of a bus", "command///req/r2/detach", cmd("detach", "CANBus:can0", hdr, nil),
				&reply{"command///res/r2/404", 404, errSubjectNotFound}},
			{"bad frequency", "command///req/r3/request", cmd("request", "CANMetrics", hdr, map[string]any{"frequency": "fast"}),
				&reply{"command///res/r3/400", 400, errParameterInvalid}},
			{"frequency below a second", "command///req/r4/request", cmd("request", "CANMetrics", hdr, map[string]any{"frequency": "500ms"}),
				&reply{"command///res/r4/400", 400, errParameterInvalid}},
			{"bad filter", "command///req/r5/request", cmd("request", "CANMetrics", hdr, map[string]any{"frequency": 0, "filter": []any{map[string]any{"id": []string{"["}}}}),
				&reply{"command///res/r5/400", 400, errParameterInvalid}},
			{"stop metrics, on the thing's topic, headers as strings", "command//org.example:gw1/req/r6/request",
				cmd("request", "CANMetrics", map[string]any{"correlation-id": "corr-1", "response-required": "true"}, map[string]any{"frequency": "0s"}),
				&reply{"command//org.example:gw1/res/r6/204", 204, ""}},
			{"response-required false as a string", "command///req/r7/attach",
				cmd("attach", "CANManager", map[string]any{"correlation-id": "corr-1", "response-required": "false"}, nil), nil},
			{"response-required false", "command///req/r8/attach",
				cmd("attach", "CANManager", map[string]any{"correlation-id": "corr-1", "response-required": false}, nil), nil},
			{"one-way (empty request id)", "command///req//attach", cmd("attach", "CANManager", hdr, nil), nil},
			{"another component's feature", "command///req/r9/request", cmd("request", "Metrics", hdr, map[string]any{"frequency": "fast"}), nil},
			{"another thing", "command//org.example:gw1:edge:containers/req/r10/attach", cmd("attach", "CANManager", hdr, nil), nil},
		} {
			h.command(c.topic, c.env)
			if c.want == nil {
				h.none(300 * time.Millisecond)
				continue
			}
			p := h.next()
			var val struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			if p.env.Value != nil {
				json.Unmarshal(p.env.Value, &val)
			}
			if p.topic != c.want.topic || p.env.Status != c.want.status || val.Error != c.want.err ||
				p.env.Headers["correlation-id"] != "corr-1" || p.env.Topic != c.env["topic"] ||
				p.env.Path != strings.Replace(c.env["path"].(string), "/inbox/", "/outbox/", 1) {
				t.Errorf("%s: replied %s %s, want %+v", c.name, p.topic, p.raw, *c.want)
			}
			if c.want.status >= 400 && val.Status != c.want.status {
				t.Errorf("%s: error value %s", c.name, p.env.Value)
			}
			if c.want.status == 204 && p.env.Value != nil {
				t.Errorf("%s: 204 with a value %s", c.name, p.env.Value)
			}
		}

		// refresh: 204, and every feature published again.
		h.command("command///req/r11/refresh", cmd("refresh", "CANManager", hdr, nil))
		var gotReply bool
		got := map[string]bool{}
		for !gotReply || len(got) < 4 {
			p := h.next()
			if strings.HasPrefix(p.topic, "command///res/") {
				if p.topic != "command///res/r11/204" || p.env.Status != 204 {
					t.Errorf("refresh replied %s %s", p.topic, p.raw)
				}
				gotReply = true
				continue
			}
			got[p.env.Path] = true
		}
	})
}

// The Metrics contract: data every frequency, filtered, only while the
// cloud link is up (or its status unknown); frequency 0 stops it.
func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		h.online()
		req := func(id string, value any) {
			h.command("command///req/"+id+"/request", map[string]any{"topic": "org.example/gw1/things/live/messages/request",
				"headers": map[string]any{"correlation-id": id, "response-required": true},
				"path":    "/features/CANMetrics/inbox/messages/request", "value": value})
		}
		data := func() MetricsData {
			t.Helper()
			for {
				p := h.next()
				if strings.HasPrefix(p.topic, "command///res/") {
					continue
				}
				if p.topic != events || p.env.Topic != "org.example/gw1/things/live/messages/data" ||
					p.env.Path != "/features/CANMetrics/outbox/messages/data" || p.env.Headers["content-type"] != "application/json" {
					t.Fatalf("data: %s %s", p.topic, p.raw)
				}
				validate(t, "CANMetrics-data", p.env.Value)
				var d MetricsData
				if err := json.Unmarshal(p.env.Value, &d); err != nil {
					t.Fatal(err)
				}
				return d
			}
		}
		req("m1", map[string]any{"frequency": "1s"})
		d := data()
		first := time.Now()
		found := false
		for _, s := range d.Snapshot {
			if s.Originator == "container:ctr-1" && s.Bus == "can0" {
				found = true
				for _, m := range s.Measurements {
					if (m.ID == "frames.rx.handled" && m.Value != 5) || (m.ID == "frames.tx.handled" && m.Value != 3) {
						t.Errorf("ctr-1 on can0: %+v", s.Measurements)
					}
				}
			}
			if s.Originator == "bus:can0" && !strings.Contains(fmt.Sprint(s.Measurements), "{frames.rx 1234} {frames.tx 56}") ||
				s.Originator == "bus:can0" && !strings.Contains(fmt.Sprint(s.Measurements), "{controller.tx.error.counter 8}") {
				t.Errorf("bus can0: %+v", s.Measurements)
			}
			if strings.HasPrefix(s.Originator, "bus:gone0") {
				t.Errorf("a gone bus in the data: %+v", s)
			}
		}
		if !found {
			t.Errorf("no snapshot of ctr-1 on can0: %+v", d)
		}
		st := sample()
		st.Attachments[0].Rules[0].Handled = 9
		h.k.set(st)
		d = data()
		if el := time.Since(first); el != time.Second {
			t.Errorf("second data after %v, frequency 1s", el)
		}
		if !strings.Contains(fmt.Sprint(d.Snapshot), "{frames.rx.handled 9}") {
			t.Errorf("counter not updated: %+v", d.Snapshot)
		}
		// Counters do not cause twin updates.
		// A filter: only rx handled of containers.
		req("m2", map[string]any{"frequency": 1, "filter": []any{map[string]any{"originator": "container:*", "id": []string{"frames.rx.handled"}}}})
		d = data()
		for _, s := range d.Snapshot {
			if !strings.HasPrefix(s.Originator, "container:") || len(s.Measurements) != 1 || s.Measurements[0].ID != "frames.rx.handled" {
				t.Errorf("filtered data: %+v", s)
			}
		}
		// The cloud link down: no data; up again: data.
		h.a.Message(TopicRemoteStatus, []byte(`{"connected":false,"timestamp":1,"cause":"CONNECTION_CLOSED"}`))
		synctest.Wait() // the status taken
		for len(h.c.pubs) > 0 {
			<-h.c.pubs // published before it
		}
		h.none(1500 * time.Millisecond)
		h.a.Message(TopicRemoteStatus, []byte(`{"connected":true,"timestamp":2}`))
		data()
		// Stop.
		req("m3", map[string]any{"frequency": "0"})
		for {
			p := h.next()
			if p.topic == "command///res/m3/204" {
				break
			}
		}
		h.none(1500 * time.Millisecond)
	})
}

// A bus with more attachments than fit in 8 KB lists those that fit and
// says so; the count stays.
func TestTruncation(t *testing.T) {
	st := State{Buses: []attach.HostBusStatus{{Name: "can0", Index: 3, Kind: "can", Up: true, MTU: 16, Attachments: 200}}}
	for i := range 200 {
		st.Attachments = append(st.Attachments, attach.Attachment{
			Target: fmt.Sprintf("netns:%d", i), Label: fmt.Sprintf("container app-%03d", i), Container: fmt.Sprintf("%064d", i),
			Name: fmt.Sprintf("app-%03d", i), HostBus: "can0", HostBusIndex: 3, Inside: "can0",
			Rules: []attach.RuleState{{Direction: "rx", Filter: "all"}, {Direction: "tx", Filter: "7DF"}},
		})
	}
	f, err := Features(st, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := f["CANBus:can0"]
	var bus struct {
		Properties struct{ Status BusStatus } `json:"properties"`
	}
	json.Unmarshal(v, &bus)
	s := bus.Properties.Status
	if len(v) > MaxFeatureBytes || !s.AttachmentsTruncated || s.AttachmentCount != 200 || len(s.Attachments) < 10 || len(s.Attachments) >= 200 {
		t.Errorf("%d bytes, truncated %v, count %d, listed %d", len(v), s.AttachmentsTruncated, s.AttachmentCount, len(s.Attachments))
	}
	// The ones listed are the first by key, and one more would not fit.
	for i := range len(s.Attachments) {
		if _, ok := s.Attachments[fmt.Sprintf("%064d", i)]; !ok {
			t.Errorf("attachment %d not listed", i)
		}
	}
	validate(t, "CANBus", v)
	st.Attachments = st.Attachments[:len(s.Attachments)+1]
	f, _ = Features(st, "v", nil)
	if !strings.Contains(string(f["CANBus:can0"]), `"attachmentsTruncated":true`) {
		t.Errorf("one more than listed fits: %d bytes", len(f["CANBus:can0"]))
	}
	st.Attachments = st.Attachments[:3]
	f, _ = Features(st, "v", nil)
	if strings.Contains(string(f["CANBus:can0"]), "attachmentsTruncated") {
		t.Errorf("3 attachments truncated: %s", f["CANBus:can0"])
	}
}

// validate checks value against docs/ditto/<name>.schema.json.
func validate(t *testing.T, name string, value []byte) {
	t.Helper()
	schematest.Validate(t, "docs/ditto/"+name+".schema.json", value)
}

// The schemas hold: a value that breaks them fails.
func TestSchemasRefuse(t *testing.T) {
	for name, bad := range map[string]string{
		"CANBus":          `{"definition":["io.kanto-can:CANBus:1.0.0"],"properties":{"status":{"bus":"can0","kind":"can","up":true,"fd":false,"mtu":16,"attachmentCount":1,"attachments":{"x":{"label":"","inside":"can0","direction":"sideways","rxFilters":[],"txFilters":[],"state":"routed"}}}}}`,
		"CANManager":      `{"definition":["com.bosch:X:1"],"properties":{"status":{}}}`,
		"CANMetrics-data": `{"snapshot":[{"originator":"SYSTEM","bus":"can0","measurements":[]}],"timestamp":1}`,
	} {
		if schematest.Check(t, "docs/ditto/"+name+".schema.json", []byte(bad)) == nil {
			t.Errorf("%s accepts %s", name, bad)
		}
	}
}

// A kernel that cannot be read (no can_gw): CANManager says why, with
// the modules; once it can, the buses follow and the last error stays.
func TestReadError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := &kernel{err: fmt.Errorf("the can-gw kernel module is not loaded")}
		h := start(t, Config{ThingID: "org.example:gw1", Read: k.read, Debounce: 100 * time.Millisecond})
		h.k = k
		h.a.Connected()
		got := h.features(2)
		var mgr struct {
			Properties struct{ Status ManagerStatus } `json:"properties"`
		}
		json.Unmarshal(got["/features/CANManager"].env.Value, &mgr)
		m := mgr.Properties.Status
		if m.LastError == nil || !strings.Contains(m.LastError.Message, "can-gw kernel module is not loaded") || m.LastError.Time == 0 ||
			!m.Modules["can"] || m.Modules["vcan"] {
			t.Errorf("CANManager: %s", got["/features/CANManager"].env.Value)
		}
		validate(t, "CANManager", got["/features/CANManager"].env.Value)
		if _, ok := got["/features/CANMetrics"]; !ok {
			t.Errorf("published %v", keys(got))
		}
		k.set(sample())
		k.mu.Lock()
		k.err = nil
		k.mu.Unlock()
		h.a.Kick()
		got = h.features(3)
		if _, ok := got["/features/CANBus:can0"]; !ok {
			t.Errorf("published %v", keys(got))
		}
		if !strings.Contains(string(got["/features/CANManager"].env.Value), "can-gw kernel module") {
			t.Errorf("the last error went: %s", got["/features/CANManager"].env.Value)
		}
	})
}

// CANManager shows the policy in force and the link to containerd (the
// daemon's Health), even while the kernel cannot be read; a change of
// either publishes it again.
func TestManagerShowsPolicyAndContainerd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		health := Health{
			Policy:     &PolicyStatus{InForce: policy.InForce{Path: "/etc/kanto-can/config.json"}},
			Containerd: &ContainerdStatus{Address: "/run/containerd/containerd.sock", Namespaces: []string{"kanto-cm", "k8s.io"}, Error: "connection refused"},
		}
		k := &kernel{err: fmt.Errorf("the can-gw kernel module is not loaded")}
		h := start(t, Config{ThingID: "org.example:gw1", Read: k.read, Debounce: 100 * time.Millisecond,
			Health: func() Health { mu.Lock(); defer mu.Unlock(); return health }})
		h.a.Connected()
		got := h.features(2)
		v := got["/features/CANManager"].env.Value
		validate(t, "CANManager", v)
		for _, want := range []string{`"policy":{"path":"/etc/kanto-can/config.json","present":false,`,
			`"containerd":{"address":"/run/containerd/containerd.sock","namespaces":["kanto-cm","k8s.io"],"connected":false,"error":"connection refused"}`,
			`"definition":["io.kanto-can:CANManager:1.1.0"]`} {
			if !strings.Contains(string(v), want) {
				t.Errorf("CANManager: %s\nwant %s", v, want)
			}
		}
		mu.Lock()
		health = Health{
			Policy:     &PolicyStatus{InForce: policy.InForce{Path: "/etc/kanto-can/config.json", Present: true, SHA256: strings.Repeat("ab", 32), Buses: 2, Containers: 1}},
			Containerd: &ContainerdStatus{Address: "/run/containerd/containerd.sock", Namespaces: []string{"kanto-cm", "k8s.io"}, Connected: true},
		}
		mu.Unlock()
		h.a.Kick()
		p := h.next()
		v = p.env.Value
		if p.env.Path != "/features/CANManager" || !strings.Contains(string(v), `"present":true,"sha256":"abab`) ||
			!strings.Contains(string(v), `"connected":true}`) {
			t.Errorf("after the change: %s %s", p.env.Path, v)
		}
		validate(t, "CANManager", v)
	})
}

// A bridged attachment (kanto-can-daemon carries its frames; it has no
// rules) is routed while its bus exists, with the ids its record grants,
// and says its mode; a gateway one does not.
func TestBridgedAttachmentFeature(t *testing.T) {
	st := State{
		Buses: []attach.HostBusStatus{{Name: "can0", Index: 3, Kind: "can", Up: true, MTU: 16, Attachments: 2}},
		Attachments: []attach.Attachment{
			{Target: "netns:1", Container: "ctr-1", Name: "app", HostBus: "can0", HostBusIndex: 3, Inside: "can0", Mode: attach.ModeBridge,
				Bridge: &attach.BridgeGrant{Dir: "both", RX: []string{"7E8"}, TX: []string{"all"}}, TxRate: &attach.RateState{FramesPerSecond: 10, Burst: 5}},
			{Target: "netns:2", Container: "ctr-2", HostBus: "can0", HostBusIndex: 3, Inside: "can0", Mode: attach.ModeGateway,
				Rules: []attach.RuleState{{Direction: "rx", Filter: "all"}}},
		},
	}
	f, err := Features(st, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := f["CANBus:can0"]
	validate(t, "CANBus", v)
	for _, want := range []string{
		`"ctr-1":{"name":"app","label":"","inside":"can0","direction":"both","rxFilters":["7E8"],"txFilters":["all"],"txRateLimit":{"framesPerSecond":10,"burst":5},"state":"routed","mode":"bridge"}`,
		`"ctr-2":{"label":"","inside":"can0","direction":"rx","rxFilters":["all"],"txFilters":[],"state":"routed"}`,
	} {
		if !strings.Contains(string(v), want) {
			t.Errorf("CANBus:can0 = %s\nwant it to contain %s", v, want)
		}
	}
}

// A delete that went out while nothing carried it to the cloud (the hub
// down, suite-connector stopped) would leave the backend's twin with the
// feature forever: the next thing answer, which comes when the cloud link
// is up again, sends it once more with the rest; the one after does not.
func TestDeletesAreSentAgainOnTheNextThingAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		h.online()
		h.a.Message(TopicRemoteStatus, []byte(`{"connected":false}`))
		st := sample()
		st.Buses[2].Index = 0 // vcan0 goes
		h.k.set(st)
		h.a.Kick()
		if del := h.features(2)["/features/CANBus:vcan0"]; !strings.HasSuffix(del.env.Topic, "/delete") {
			t.Fatalf("vcan0 gone: %s", del.raw)
		}
		h.a.Message(TopicRemoteStatus, []byte(`{"connected":true}`))
		h.a.Message(TopicThingResponse, []byte(thingAnswer))
		got := h.features(4)
		if del := got["/features/CANBus:vcan0"]; !strings.HasSuffix(del.env.Topic, "/delete") {
			t.Errorf("after the thing answer: %v, want CANBus:vcan0 deleted again", keys(got))
		}
		h.a.Message(TopicThingResponse, []byte(thingAnswer))
		if got := h.features(3); got["/features/CANBus:vcan0"].raw != nil {
			t.Errorf("the delete sent a third time: %s", got["/features/CANBus:vcan0"].raw)
		}
		h.none(500 * time.Millisecond)
	})
}

// What a run published is remembered (Config.Memory): a restarted agent
// deletes what went while it was away (vcan0 here), and only for the
// same thing.
func TestRestartDeletesWhatWentMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := filepath.Join(t.TempDir(), "ditto-features")
		first := start(t, Config{Memory: mem})
		first.online()
		synctest.Wait() // the round that published them is over
		first.cancel()
		b, err := os.ReadFile(mem)
		if err != nil || !strings.Contains(string(b), `"thing":"org.example:gw1"`) || !strings.Contains(string(b), `"CANBus:vcan0"`) {
			t.Fatalf("memory after the first run: %s, %v", b, err)
		}

		st := sample()
		st.Buses[2].Index = 0 // vcan0 went while no agent ran
		again := start(t, Config{Memory: mem})
		again.k.set(st)
		got := again.online()
		if del := got["/features/CANBus:vcan0"]; !strings.HasSuffix(del.env.Topic, "/delete") {
			t.Errorf("after the restart: %v, want CANBus:vcan0 deleted", keys(got))
		}
		synctest.Wait()
		b, _ = os.ReadFile(mem)
		if strings.Contains(string(b), "vcan0") {
			t.Errorf("memory still has vcan0 after its delete was sent: %s", b)
		}

		// Another thing's memory deletes nothing.
		other := start(t, Config{Memory: mem, ThingID: "org.other:gw2"})
		other.a.Connected()
		for _, p := range other.features(4) {
			if strings.HasSuffix(p.env.Topic, "/delete") {
				t.Errorf("deleted for another thing: %s", p.raw)
			}
		}
	})
}
