package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/nl"
)

// metrics are the daemon's Prometheus metrics: its own counters, and the
// kernel's counters of each attachment, read at each scrape.
type metrics struct {
	registry   *prometheus.Registry
	reconciles *prometheus.CounterVec
	changes    *prometheus.CounterVec
	events     *prometheus.CounterVec
	audits     *prometheus.CounterVec
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
		"1 when reading the kernel's state for this scrape failed.", nil, nil)
)

func newMetrics(records string, names func() map[string]string) *metrics {
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
			Help: "Counts of the gateway rules of our host ends, by result: ok, or rules_gone (rules vanished without the host end or its bus, e.g. another tool's cangw -F: a reconcile puts them back).",
		}, []string{"result"}),
	}
	for _, r := range []string{"ok", "error"} {
		m.reconciles.WithLabelValues(r)
	}
	for _, c := range []string{"restored", "removed", "forgotten"} {
		m.changes.WithLabelValues(c)
	}
	for _, r := range []string{"ok", "rules_gone"} {
		m.audits.WithLabelValues(r)
	}
	m.registry.MustRegister(m.reconciles, m.changes, m.events, m.audits, kernelCollector{records, names},
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

func (m *metrics) ruleAudit(gone bool) {
	if gone {
		m.audits.WithLabelValues("rules_gone").Inc()
	} else {
		m.audits.WithLabelValues("ok").Inc()
	}
}

// serveMetrics serves /metrics until ctx is done.
func (d *Daemon) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{}))
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
// as fresh as the scrape.
type kernelCollector struct {
	records string
	names   func() map[string]string // containers' names by id
}

func (kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAttachments
	ch <- descFrames
	ch <- descRate
	ch <- descBusUp
	ch <- descBusState
	ch <- descBusBitrate
	ch <- descBusFD
	ch <- descBusAttachments
	ch <- descScrapeErrors
}

// busStates are the states kanto_can_bus_state reports, as ls names them.
var busStates = []string{"error-active", "error-warning", "error-passive", "bus-off", "stopped", "sleeping"}

func (k kernelCollector) Collect(ch chan<- prometheus.Metric) {
	list, buses, err := k.read()
	failed := 0.0
	if err != nil {
		failed = 1
		ch <- prometheus.NewInvalidMetric(descAttachments, err)
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, failed)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descAttachments, prometheus.GaugeValue, float64(len(list)))
	for _, a := range list {
		labels := []string{a.Container, a.Name, a.Target, a.HostBus, a.Inside}
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
	for _, b := range buses {
		ch <- prometheus.MustNewConstMetric(descBusUp, prometheus.GaugeValue, boolValue(b.Index != 0 && b.Up), b.Name)
		ch <- prometheus.MustNewConstMetric(descBusAttachments, prometheus.GaugeValue, float64(b.Attachments), b.Name)
		if b.Index == 0 {
			continue // gone: nothing more to say
		}
		ch <- prometheus.MustNewConstMetric(descBusFD, prometheus.GaugeValue, boolValue(b.FD), b.Name)
		if b.State != "" {
			for _, st := range busStates {
				ch <- prometheus.MustNewConstMetric(descBusState, prometheus.GaugeValue, boolValue(b.State == st), b.Name, st)
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

// read takes the attachments and their buses from the kernel.
func (k kernelCollector) read() ([]attach.Attachment, []attach.HostBusStatus, error) {
	return readState(k.records, k.names)
}

// readState takes the attachments and their buses from the kernel,
// through sockets of its own, with the containers' Kanto names.
func readState(records string, kantoNames func() map[string]string) ([]attach.Attachment, []attach.HostBusStatus, error) {
	h, err := attach.OpenHostConfig(nl.Config{Poll: true})
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	// Kanto's records read once for both listings.
	names := kantoNames()
	h.Records, h.Names = records, func() map[string]string { return names }
	list, err := h.List()
	if err != nil {
		return nil, nil, err
	}
	buses, err := h.HostBuses()
	return list, buses, err
}

// recorded keeps the attachments that have their record. An attach writes
// the record last, after the host end and every rule: an attachment
// without one is being made (its rules one way only, say), or an orphan
// that a reconcile removes. The twin shows neither.
func recorded(list []attach.Attachment, records string) ([]attach.Attachment, error) {
	recs, err := record.List(records)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(recs))
	for _, r := range recs {
		have[r.HostEnd] = true
	}
	kept := list[:0:0]
	for _, a := range list {
		if have[a.HostEnd] {
			kept = append(kept, a)
		}
	}
	return kept, nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
