package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/bridge"
	"github.com/kanto-can/kanto-can/internal/policy"
)

// metrics are the daemon's Prometheus metrics: its own counters, and the
// kernel's counters of each attachment, read at each scrape.
type metrics struct {
	registry   *prometheus.Registry
	reconciles *prometheus.CounterVec
	changes    *prometheus.CounterVec
	events     *prometheus.CounterVec
	audits     *prometheus.CounterVec
	// containerdUp: 1 while the daemon's subscription to containerd's
	// events is open; registered only when it watches containerd.
	containerdUp prometheus.Gauge
}

// metricsSource is where the metrics read at each scrape come from.
type metricsSource struct {
	// open opens a host with sockets of its own, closed after the scrape.
	open hostOpener
	// names are the containers' Kanto names by id.
	names func() map[string]string
	// policy is the policy in force, read at each scrape; nil: none shown.
	policy func() (policy.InForce, error)
	// bridges are the bridged attachments' counters; nil: none.
	bridges func() []bridge.Status
	// containerd: the daemon watches containerd (kanto_can_containerd_up).
	containerd bool
	log        *slog.Logger
}

// hostOpener opens a host for one look at the kernel, with opts.
type hostOpener func(opts ...attach.Option) (*attach.Host, error)

// openHost opens a host over netlink sockets in the poller, with records.
func openHost(records string) hostOpener {
	return func(opts ...attach.Option) (*attach.Host, error) {
		return attach.OpenHost(append([]attach.Option{attach.WithPoll(), attach.WithRecords(records)}, opts...)...)
	}
}

// container is the container's id, name its name (Kanto's) when it has one.
var attachmentLabels = []string{"container", "name", "target", "bus", "inside"}

var (
	descAttachments = prometheus.NewDesc("kanto_can_attachments",
		"Attachments of ours in the host's network namespace.", nil, nil)
	descFrames = prometheus.NewDesc("kanto_can_frames_total",
		"Frames the CAN gateway rules of an attachment saw, by direction (rx: bus to container, tx: container to bus) and result: "+
			"handled (forwarded), dropped (the destination refused them) or deleted (stopped by the hop limit: the echo of the container's own frames).",
		append(attachmentLabels, "direction", "result"), nil)
	descRate = prometheus.NewDesc("kanto_can_tx_rate_frames_total",
		"Frames sent by a container with a transmit rate limit, by result: passed or dropped by the limit.",
		append(attachmentLabels, "result"), nil)
	descMode = prometheus.NewDesc("kanto_can_attachment_mode",
		"1 for each attachment, with its mode: gateway (vxcan and can-gw rules) or bridge (kanto-can-daemon's sockets, where the kernel has no vxcan).",
		append(attachmentLabels, "mode"), nil)
	descBusUp = prometheus.NewDesc("kanto_can_bus_up",
		"1 when a host bus with attachments of ours exists and is up, 0 when it is down or gone.", []string{"bus"}, nil)
	descBusState = prometheus.NewDesc("kanto_can_bus_state",
		"A CAN controller's error state: 1 for the current state, 0 for the others (error-active, error-warning, error-passive, bus-off, stopped, sleeping). Absent for virtual buses.",
		[]string{"bus", "state"}, nil)
	descBusBitrate = prometheus.NewDesc("kanto_can_bus_bitrate_bits_per_second",
		"A CAN controller's bitrate (phase data for the CAN FD data phase).", []string{"bus", "phase"}, nil)
	descBusFD = prometheus.NewDesc("kanto_can_bus_fd",
		"1 when the bus carries CAN FD frames (MTU 72).", []string{"bus"}, nil)
	descBusAttachments = prometheus.NewDesc("kanto_can_bus_attachments",
		"Attachments of ours on a host bus.", []string{"bus"}, nil)
	descScrapeErrors = prometheus.NewDesc("kanto_can_scrape_error",
		"1 when reading a part of the state failed for this scrape (the daemon's log says why, once per change): "+
			"attachments (host ends, gateway rules, rate limits: per-attachment metrics are missing), buses (the link dump), policy (the policy file).",
		[]string{"part"}, nil)
	descPolicy = prometheus.NewDesc("kanto_can_policy_info",
		"The admin's policy in force, always 1: its file, whether it exists (present=\"false\": every container may use every bus, both ways, with no rate limit) and the sha256 of its bytes.",
		[]string{"path", "present", "sha256"}, nil)
	descPolicyEntries = prometheus.NewDesc("kanto_can_policy_entries",
		"Entries of the policy in force, by kind: buses, containers, default (1 when it grants containers no entry matches).",
		[]string{"kind"}, nil)
)

// Parts of kanto_can_scrape_error.
var scrapeParts = []string{"attachments", "buses", "policy"}

func newMetrics(src metricsSource) *metrics {
	if src.log == nil {
		src.log = slog.New(slog.DiscardHandler)
	}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kanto_can_reconciles_total",
			Help: "Reconciles of the records with the kernel, by result (ok or error).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kanto_can_reconcile_changes_total",
			Help: "Attachments changed by reconciles: restored (rules put back), removed (half made, or container gone), forgotten (record of a vanished host end).",
		}, []string{"change"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kanto_can_containerd_events_total",
			Help: "containerd task events seen in the watched namespaces, by topic.",
		}, []string{"topic"}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kanto_can_rule_audits_total",
			Help: "Counts of the gateway rules of our host ends, by result: ok, rules_gone (rules vanished without the host end or its bus, e.g. another tool's cangw -F: a reconcile puts them back), or error (the links or rules could not be read, e.g. can-gw not loaded).",
		}, []string{"result"}),
		containerdUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kanto_can_containerd_up",
			Help: "1 while the daemon receives containerd's task events, 0 while containerd is unreachable: containers that exit meanwhile are cleaned up when it is back.",
		}),
	}
	for _, r := range []string{"ok", "error"} {
		m.reconciles.WithLabelValues(r)
	}
	for _, c := range []string{"restored", "removed", "forgotten"} {
		m.changes.WithLabelValues(c)
	}
	for _, r := range []string{"ok", "rules_gone", "error"} {
		m.audits.WithLabelValues(r)
	}
	if src.containerd {
		m.registry.MustRegister(m.containerdUp)
	}
	m.registry.MustRegister(m.reconciles, m.changes, m.events, m.audits, &kernelCollector{src: src},
		// The live heap after the last GC (go_gc_heap_live_bytes) shows a
		// leak long before the resident memory does.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) reconciled(rep attach.Report, err error) {
	if err != nil {
		m.reconciles.WithLabelValues("error").Inc()
	} else {
		m.reconciles.WithLabelValues("ok").Inc()
	}
	m.changes.WithLabelValues("restored").Add(float64(len(rep.Restored)))
	m.changes.WithLabelValues("removed").Add(float64(len(rep.Removed)))
	m.changes.WithLabelValues("forgotten").Add(float64(len(rep.Forgotten)))
}

func (m *metrics) containerdEvent(topic string) { m.events.WithLabelValues(topic).Inc() }

func (m *metrics) ruleAudit(gone bool, err error) {
	if err != nil {
		m.audits.WithLabelValues("error").Inc()
	} else if gone {
		m.audits.WithLabelValues("rules_gone").Inc()
	} else {
		m.audits.WithLabelValues("ok").Inc()
	}
}

// handler serves the metrics. What cannot be read is left out and
// reported (kanto_can_scrape_error), never the whole answer: a collector
// that fails anyway costs its own metrics only.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// serveMetrics serves /metrics until ctx is done.
func (d *Daemon) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.metrics.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// kernelCollector reads the attachments' counters from the kernel at each
// scrape, through its own netlink sockets: the numbers are the kernel's,
// as fresh as the scrape. A part that cannot be read (the gateway rules
// while can-gw is not loaded) is left out and named by
// kanto_can_scrape_error; the failure is logged when it starts or its
// cause changes, and when it ends.
type kernelCollector struct {
	src    metricsSource
	failed condition
}

func (*kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAttachments
	ch <- descMode
	ch <- descFrames
	ch <- descRate
	ch <- descBusUp
	ch <- descBusState
	ch <- descBusBitrate
	ch <- descBusFD
	ch <- descBusAttachments
	ch <- descScrapeErrors
	ch <- descPolicy
	ch <- descPolicyEntries
}

// busStates are the states kanto_can_bus_state reports, as ls names them.
var busStates = []string{"error-active", "error-warning", "error-passive", "bus-off", "stopped", "sleeping"}

func (k *kernelCollector) Collect(ch chan<- prometheus.Metric) {
	st := readKernel(k.src.open, k.src.names)
	failed := map[string]error{"attachments": st.listErr, "buses": st.busesErr}
	if k.src.policy != nil {
		in, err := k.src.policy()
		failed["policy"] = err
		if err == nil {
			ch <- prometheus.MustNewConstMetric(descPolicy, prometheus.GaugeValue, 1, in.Path, strconv.FormatBool(in.Present), in.SHA256)
			ch <- prometheus.MustNewConstMetric(descPolicyEntries, prometheus.GaugeValue, float64(in.Buses), "buses")
			ch <- prometheus.MustNewConstMetric(descPolicyEntries, prometheus.GaugeValue, float64(in.Containers), "containers")
			ch <- prometheus.MustNewConstMetric(descPolicyEntries, prometheus.GaugeValue, boolValue(in.Default), "default")
		}
	}
	var errs []error
	for _, part := range scrapeParts {
		if _, asked := failed[part]; !asked {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, boolValue(failed[part] != nil), part)
		if failed[part] != nil {
			errs = append(errs, fmt.Errorf("%s: %w", part, failed[part]))
		}
	}
	err := errors.Join(errs...)
	k.failed.report(k.src.log, err, "metrics: cannot read everything; what can be read is served", "metrics: reading everything again")

	switch {
	case st.listErr == nil:
		ch <- prometheus.MustNewConstMetric(descAttachments, prometheus.GaugeValue, float64(len(st.list)))
	case st.busesErr == nil:
		// The host ends are in the link dump: their number is known.
		n := 0
		for _, b := range st.buses {
			n += b.Attachments
		}
		ch <- prometheus.MustNewConstMetric(descAttachments, prometheus.GaugeValue, float64(n))
	}
	bridged := map[string]bridge.Status{}
	if k.src.bridges != nil {
		for _, b := range k.src.bridges() {
			bridged[b.Key] = b
		}
	}
	for _, a := range st.list {
		labels := []string{a.Container, a.Name, a.Target, a.HostBus, a.Inside}
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, 1, append(labels, a.Mode)...)
		if a.Mode == attach.ModeBridge {
			collectBridge(ch, labels, a, bridged[attach.HostEndName(a.Target, a.HostBus)])
			continue
		}
		type key struct{ dir, result string }
		sums := map[key]float64{}
		for _, dir := range []string{"rx", "tx"} {
			for _, res := range []string{"handled", "dropped", "deleted"} {
				sums[key{dir, res}] = 0
			}
		}
		for _, r := range a.Rules {
			sums[key{r.Direction, "handled"}] += float64(r.Handled)
			sums[key{r.Direction, "dropped"}] += float64(r.Dropped)
			sums[key{r.Direction, "deleted"}] += float64(r.Deleted)
		}
		for k, v := range sums {
			ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, v, append(labels, k.dir, k.result)...)
		}
		if a.TxRate != nil {
			ch <- prometheus.MustNewConstMetric(descRate, prometheus.CounterValue, float64(a.TxRate.Passed), append(labels, "passed")...)
			ch <- prometheus.MustNewConstMetric(descRate, prometheus.CounterValue, float64(a.TxRate.Dropped), append(labels, "dropped")...)
		}
	}
	for _, b := range st.buses {
		ch <- prometheus.MustNewConstMetric(descBusUp, prometheus.GaugeValue, boolValue(b.Index != 0 && b.Up), b.Name)
		ch <- prometheus.MustNewConstMetric(descBusAttachments, prometheus.GaugeValue, float64(b.Attachments), b.Name)
		if b.Index == 0 {
			continue // gone: nothing more to say
		}
		ch <- prometheus.MustNewConstMetric(descBusFD, prometheus.GaugeValue, boolValue(b.FD), b.Name)
		if b.State != "" {
			for _, state := range busStates {
				ch <- prometheus.MustNewConstMetric(descBusState, prometheus.GaugeValue, boolValue(b.State == state), b.Name, state)
			}
		}
		if b.Bitrate != 0 {
			ch <- prometheus.MustNewConstMetric(descBusBitrate, prometheus.GaugeValue, float64(b.Bitrate), b.Name, "nominal")
		}
		if b.DataBitrate != 0 {
			ch <- prometheus.MustNewConstMetric(descBusBitrate, prometheus.GaugeValue, float64(b.DataBitrate), b.Name, "data")
		}
	}
}

// kernelState is one read of the kernel: the attachments and their buses,
// each with why it could not be read.
type kernelState struct {
	list     []attach.Attachment
	listErr  error
	buses    []attach.HostBusStatus
	busesErr error
}

// readKernel takes the attachments and their buses from the kernel,
// through a host of its own, with the containers' Kanto names. The buses
// need only the link dump: they are read even when the rules cannot be
// (can-gw not loaded).
func readKernel(open hostOpener, kantoNames func() map[string]string) kernelState {
	// Kanto's records read once for both listings.
	names := kantoNames()
	h, err := open(attach.WithNames(func() map[string]string { return names }))
	if err != nil {
		return kernelState{listErr: err, busesErr: err}
	}
	defer h.Close()
	var st kernelState
	st.list, st.listErr = h.List()
	st.buses, st.busesErr = h.HostBuses()
	return st
}

// collectBridge gives a bridged attachment's frames as the gateway's are
// given: handled (forwarded) or dropped, each way; the rate limit's.
func collectBridge(ch chan<- prometheus.Metric, labels []string, a attach.Attachment, b bridge.Status) {
	for _, m := range []struct {
		dir, result string
		v           uint64
	}{{"rx", "handled", b.RX}, {"rx", "dropped", b.RXLost}, {"rx", "deleted", 0},
		{"tx", "handled", b.TX}, {"tx", "dropped", b.TXLost}, {"tx", "deleted", 0}} {
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(m.v), append(labels, m.dir, m.result)...)
	}
	if a.TxRate != nil {
		ch <- prometheus.MustNewConstMetric(descRate, prometheus.CounterValue, float64(b.TX), append(labels, "passed")...)
		ch <- prometheus.MustNewConstMetric(descRate, prometheus.CounterValue, float64(b.TXLimited), append(labels, "dropped")...)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
