package ditto

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultPoll     = 2 * time.Second
	DefaultDebounce = time.Second
)

// Config configures an Agent.
type Config struct {
	// ThingID is the thing's id, fixed; "" asks edge/thing/request.
	ThingID string
	// Read returns the kernel's state (Modules are filled in by the agent).
	Read func() (State, error)
	// Poll is how often the state is read to notice changes without an
	// event (a controller's error state); <= 0 DefaultPoll.
	Poll time.Duration
	// Debounce is the least time between two publishes of one feature;
	// <= 0 DefaultDebounce.
	Debounce time.Duration
	// Health is what CANManager shows besides the kernel's state (the
	// policy in force, containerd), read at every look; nil: none.
	Health func() Health
	// Version is CANManager's version.
	Version string
	// SysModule is where the kernel lists its modules (/sys/module).
	SysModule string
	// Memory is a file where the agent keeps which features it published,
	// so that a restarted agent deletes those that went meanwhile; ""
	// keeps none.
	Memory string
	Log    *slog.Logger
}

// Agent publishes the features and answers commands: a state machine run
// by one goroutine (Run); Connected, Disconnected, Message, Kick and
// ReportError hand it events from anywhere.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	events chan func(*Agent)
	kick   chan struct{}
	done   chan struct{} // closed when Run returns

	mu      sync.Mutex
	lastErr *Error

	client    Client
	connected bool
	thing     Thing
	fixed     bool
	// remote: the cloud link as suite-connector reports it; unknown
	// (no retained status) counts as connected.
	remote, remoteKnown bool

	desired   map[string][]byte    // features as the state says now
	published map[string][]byte    // as last published
	lastPub   map[string]time.Time // when each was last published
	stale     map[string]bool      // to publish even if unchanged
	state     State                // the last state read
	// deleted: features deleted since the last republish. A delete
	// published while the hub was away reached no one, so the next
	// republish (a thing answer: the cloud link is up again) sends it
	// once more.
	deleted map[string]bool
	// remembered: what a previous run published (Config.Memory), until
	// the thing is known; saved: what is in the memory file now.
	remembered memory
	saved      string

	metrics     metricsRequest
	metricsTick *time.Ticker
	debounce    *time.Timer
}

// New makes an agent.
func New(cfg Config) *Agent {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SysModule == "" {
		cfg.SysModule = "/sys/module"
	}
	a := &Agent{
		cfg: cfg, log: cfg.Log, events: make(chan func(*Agent), 64), kick: make(chan struct{}, 1),
		done:      make(chan struct{}),
		published: map[string][]byte{}, lastPub: map[string]time.Time{}, stale: map[string]bool{},
		deleted: map[string]bool{},
	}
	if cfg.Memory != "" {
		m, err := loadMemory(cfg.Memory)
		if err != nil {
			a.log.Warn("ditto: what was published before is not known", "err", err)
		}
		a.remembered = m
	}
	if cfg.ThingID != "" {
		a.thing, a.fixed = Thing{ID: cfg.ThingID}, true
		a.recall()
	}
	return a
}

// recall takes what a previous run published for the thing as deleted:
// the next republish deletes those that are not there now.
func (a *Agent) recall() {
	if a.remembered.Thing == a.thing.ID {
		for _, id := range a.remembered.Features {
			a.deleted[id] = true
		}
	}
	a.remembered = memory{}
}

// remember saves what has been published, and the deletes still to be
// sent again, when that changed.
func (a *Agent) remember() {
	if a.cfg.Memory == "" || a.thing.ID == "" {
		return
	}
	m := memory{Thing: a.thing.ID, Features: []string{}}
	for id := range a.published {
		m.Features = append(m.Features, id)
	}
	for id := range a.deleted {
		m.Features = append(m.Features, id)
	}
	for id := range a.stale {
		if _, has := a.published[id]; !has && !a.deleted[id] {
			m.Features = append(m.Features, id)
		}
	}
	slices.Sort(m.Features)
	b, _ := json.Marshal(m)
	if string(b) == a.saved {
		return
	}
	if err := writeMemory(a.cfg.Memory, b); err != nil {
		a.log.Warn("ditto: saving what was published", "err", err)
		return
	}
	a.saved = string(b)
}

// post hands ev to Run's goroutine (dropped once Run returned).
func (a *Agent) post(ev func(*Agent)) {
	select {
	case a.events <- ev:
	case <-a.done:
	}
}

// Connected tells the agent that the client is (again) connected.
func (a *Agent) Connected() { a.post((*Agent).onConnect) }

// Disconnected tells the agent that the connection is lost.
func (a *Agent) Disconnected(err error) {
	a.post(func(a *Agent) {
		a.connected = false
		a.log.Warn("mqtt connection lost", "err", err)
	})
}

// Message hands the agent a message of a subscribed topic.
func (a *Agent) Message(topic string, payload []byte) {
	a.post(func(a *Agent) { a.onMessage(topic, payload) })
}

// Kick asks for a new look at the state (after a reconcile, on a link
// event). Kicks that arrive before it is taken are merged.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// ReportError makes err CANManager's last error.
func (a *Agent) ReportError(err error) {
	if err == nil {
		return
	}
	a.noteError(err)
	a.Kick()
}

// Run runs the agent with client until ctx is done.
func (a *Agent) Run(ctx context.Context, client Client) error {
	defer close(a.done)
	a.client = client
	poll := time.NewTicker(a.cfg.Poll)
	defer poll.Stop()
	a.debounce = time.NewTimer(time.Hour)
	a.debounce.Stop()
	a.metricsTick = time.NewTicker(time.Hour)
	a.metricsTick.Stop()
	defer a.metricsTick.Stop()
	a.look()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-a.events:
			ev(a)
		case <-a.kick:
			a.look()
		case <-poll.C:
			a.look()
		case <-a.debounce.C:
			a.flush()
		case <-a.metricsTick.C:
			a.sendMetrics()
		}
	}
}

// ready: connected and the thing known.
func (a *Agent) ready() bool { return a.connected && a.thing.ID != "" }

func (a *Agent) onConnect() {
	a.connected = true
	topics := []string{TopicThingResponse, TopicRemoteStatus, TopicRootCommands}
	if a.thing.ID != "" {
		topics = append(topics, a.thing.commandTopic())
	}
	if err := a.client.Subscribe(topics...); err != nil {
		a.log.Warn("mqtt subscribe", "err", err)
	}
	a.log.Info("mqtt connected", "thing", a.thing.ID)
	if a.fixed {
		a.republish()
		return
	}
	// Every (re)connect: the thing id again (a restarted broker, a
	// connector that started after us).
	if err := a.client.Publish(TopicThingRequest, []byte("{}")); err != nil {
		a.log.Warn("mqtt publish", "topic", TopicThingRequest, "err", err)
	}
}

func (a *Agent) onMessage(topic string, payload []byte) {
	switch {
	case topic == TopicThingResponse:
		if a.fixed {
			return
		}
		t, err := parseThingResponse(payload)
		if err != nil {
			a.log.Warn("thing id", "err", err)
			return
		}
		a.setThing(t)
	case topic == TopicRemoteStatus:
		was := a.remoteUp()
		a.remote, a.remoteKnown = parseRemoteStatus(payload)
		if was != a.remoteUp() {
			a.log.Info("ditto: cloud link", "connected", a.remoteUp())
		}
		if !was && a.remoteUp() && a.metrics.Frequency > 0 {
			a.sendMetrics()
		}
	case strings.HasPrefix(topic, commandPrefix):
		a.onCommand(topic, payload)
	}
}

// remoteUp: the cloud link is up, or its status unknown.
func (a *Agent) remoteUp() bool { return !a.remoteKnown || a.remote }

// setThing takes a thing-id answer: the cloud link is (again) up, so
// every feature is published again; a new id starts over.
func (a *Agent) setThing(t Thing) {
	if t.ID != a.thing.ID {
		if a.thing.ID != "" {
			a.log.Info("thing id changed: starting over", "was", a.thing.ID, "thing", t.ID)
		}
		a.published, a.lastPub, a.stale, a.deleted = map[string][]byte{}, map[string]time.Time{}, map[string]bool{}, map[string]bool{}
		a.stopMetrics()
		a.thing = t
		a.recall()
		if err := a.client.Subscribe(t.commandTopic()); err != nil {
			a.log.Warn("mqtt subscribe", "err", err)
		}
	}
	a.thing.Tenant = t.Tenant
	a.log.Info("thing id", "thing", t.ID, "tenant", t.Tenant)
	a.republish()
}

// republish publishes every feature again, and the deletes since the last
// republish, as soon as the debounce lets.
func (a *Agent) republish() {
	a.read()
	for id := range a.desired {
		a.stale[id] = true
	}
	for id := range a.deleted {
		if _, back := a.desired[id]; !back {
			a.stale[id] = true
		}
	}
	a.deleted = map[string]bool{}
	a.flush()
}

// look reads the state and publishes what changed.
func (a *Agent) look() {
	a.read()
	a.flush()
}

// read reads the state and builds the features from it. When reading
// fails, CANManager says so (with the modules, which tell why often: no
// can_gw) and the rest stays as last read.
func (a *Agent) read() {
	st, err := a.cfg.Read()
	if err != nil {
		if a.noteError(fmt.Errorf("reading the kernel's state: %w", err)) {
			a.log.Warn("ditto: reading the state", "err", err)
		}
		st = a.state
	}
	st.Modules = ReadModules(a.cfg.SysModule)
	if a.cfg.Health != nil {
		h := a.cfg.Health()
		st.Policy, st.Containerd = h.Policy, h.Containerd
	}
	if err == nil {
		a.state = st
	}
	a.rebuild(st)
}

// noteError is ReportError without the kick (inside the loop); it
// reports whether err is new (not the last error again).
func (a *Agent) noteError(err error) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr != nil && a.lastErr.Message == err.Error() {
		return false
	}
	a.lastErr = &Error{Message: err.Error(), Time: time.Now().Unix()}
	return true
}

func (a *Agent) rebuild(st State) {
	a.mu.Lock()
	lastErr := a.lastErr
	a.mu.Unlock()
	f, err := Features(st, a.cfg.Version, lastErr)
	if err != nil {
		a.log.Warn("ditto: features", "err", err)
		return
	}
	a.desired = f
}

// flush publishes every feature that differs from what was published (or
// is stale), deletes those that are gone, each at most once per debounce
// period; what must wait arms the debounce timer.
func (a *Agent) flush() {
	if !a.ready() || a.desired == nil {
		return
	}
	now := time.Now()
	var next time.Time
	ids := make([]string, 0, len(a.desired)+len(a.published))
	for id := range a.desired {
		ids = append(ids, id)
	}
	for id := range a.published {
		if _, ok := a.desired[id]; !ok {
			ids = append(ids, id)
		}
	}
	for id := range a.stale {
		_, has := a.desired[id]
		_, was := a.published[id]
		if !has && !was {
			ids = append(ids, id) // a delete to send again
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		want, has := a.desired[id]
		got, was := a.published[id]
		if has && was && !a.stale[id] && string(want) == string(got) {
			continue
		}
		if due := a.lastPub[id].Add(a.cfg.Debounce); now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		var env Envelope
		if has {
			env = modify(a.thing, id, want, uuid())
		} else {
			env = remove(a.thing, id, uuid())
		}
		if err := a.send(a.thing.eventTopic(), env); err != nil {
			// The rest would likely wait for the same broker: all of
			// them are tried again after the debounce period.
			a.log.Warn("ditto: publish", "feature", id, "err", err)
			next = now.Add(a.cfg.Debounce)
			break
		}
		a.lastPub[id] = now
		delete(a.stale, id)
		if has {
			a.published[id] = want
			delete(a.deleted, id)
			a.log.Debug("ditto: published", "feature", id)
		} else if was {
			delete(a.published, id)
			a.deleted[id] = true
			a.log.Info("ditto: deleted", "feature", id)
		} else {
			a.log.Info("ditto: deleted again", "feature", id)
		}
	}
	if !next.IsZero() {
		a.debounce.Reset(time.Until(next))
	}
	a.remember()
}

func (a *Agent) send(topic string, env Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return a.client.Publish(topic, b)
}

func (a *Agent) onCommand(topic string, payload []byte) {
	thingPart, reqID, ok := parseCommandTopic(topic)
	if !ok || a.thing.ID == "" || (thingPart != "" && thingPart != a.thing.ID) {
		return
	}
	var env Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		a.log.Debug("ditto: command not understood", "topic", topic, "err", err)
		return
	}
	feature, subject, ok := parseInboxPath(env.Path)
	// Commands for others' features (system-metrics' Metrics, ...) and
	// other things are theirs to answer.
	if !ok || !ours(feature) || !strings.HasPrefix(env.Topic, a.thing.dittoTopic("live/messages/")) {
		return
	}
	c := command{thingPart: thingPart, reqID: reqID, env: env, feature: feature, subject: subject}
	status, value := a.handle(c)
	a.log.Info("ditto: command", "feature", feature, "subject", subject, "status", status)
	if reqID == "" {
		return // one-way
	}
	if rr, ok := headerBool(env.Headers, "response-required"); ok && !rr {
		return
	}
	if err := a.send(c.replyTopic(status), c.reply(status, value)); err != nil {
		a.log.Warn("ditto: reply", "err", err)
	}
}

// handle runs a command of one of our features: its status and value.
func (a *Agent) handle(c command) (int, []byte) {
	switch {
	case c.feature == FeatureManager && c.subject == "refresh":
		a.republish()
		return 204, nil
	case c.feature == FeatureMetrics && c.subject == "request":
		req, err := parseMetricsRequest(c.env.Value)
		if err != nil {
			return 400, errorValue(400, errParameterInvalid, err.Error())
		}
		a.startMetrics(req)
		return 204, nil
	}
	return 404, errorValue(404, errSubjectNotFound, fmt.Sprintf("feature %s has no message %q (read-only: no attach or detach from here)", c.feature, c.subject))
}

func (a *Agent) startMetrics(req metricsRequest) {
	if req.Frequency <= 0 {
		a.stopMetrics()
		a.log.Info("ditto: metrics stopped")
		return
	}
	a.metrics = req
	a.metricsTick.Reset(req.Frequency)
	a.log.Info("ditto: metrics", "frequency", req.Frequency)
	a.sendMetrics()
}

func (a *Agent) stopMetrics() {
	a.metrics = metricsRequest{}
	a.metricsTick.Stop()
}

// sendMetrics publishes one data message, while someone asked for them,
// the thing is known and the cloud link up.
func (a *Agent) sendMetrics() {
	if a.metrics.Frequency <= 0 || !a.ready() || !a.remoteUp() {
		return
	}
	st, err := a.cfg.Read()
	if err != nil {
		a.log.Debug("ditto: reading counters", "err", err)
		return
	}
	v, err := json.Marshal(metricsData(st, a.metrics.Filter, time.Now()))
	if err == nil {
		err = a.send(a.thing.eventTopic(), liveData(a.thing, FeatureMetrics, v))
	}
	if err != nil {
		a.log.Warn("ditto: metrics data", "err", err)
	}
}

// uuid is a random (version 4) UUID, for correlation ids.
func uuid() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
