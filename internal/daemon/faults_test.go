package daemon

// Faults that must show, once: can-gw not loaded (the scrape, the rule
// audit), containerd unreachable, no policy.

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/fakekernel"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
)

// logBuffer collects a logger's lines, safe for concurrent use.
type logBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	lines chan string // each line as written, when not nil
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines != nil {
		for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			l.lines <- line
		}
	}
	return l.b.Write(p)
}

// count is how many lines contain every one of subs.
func (l *logBuffer) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog(buf io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// gwSwitch is a fake kernel whose can-gw can be unloaded: its rule
// requests then fail as the kernel answers them without the module.
type gwSwitch struct {
	k        *fakekernel.Kernel
	unloaded atomic.Bool
}

func (g *gwSwitch) fn(ns int, req nl.Message) ([]nl.Message, error) {
	switch req.Header.Type {
	case unix.RTM_GETROUTE, unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if g.unloaded.Load() {
			return nil, unix.EOPNOTSUPP
		}
	}
	return g.k.Func(ns, req)
}

// open opens a host on the fake kernel, as the collector does per scrape.
func (g *gwSwitch) open(records string) hostOpener {
	return func(opts ...attach.Option) (*attach.Host, error) {
		opts = append([]attach.Option{attach.WithRecords(records)}, opts...)
		return attach.NewHost(nltest.Dial(g.fn), nltest.Dial(g.fn), nltest.Dial(g.fn), opts...), nil
	}
}

// scrape serves one scrape of m and parses it.
func scrape(t *testing.T, m *metrics) kerneltest.Metrics {
	t.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return kerneltest.Metrics(fams)
}

// Without can-gw the scrape still answers 200 with what can be read: the
// buses, the number of attachments, the daemon's own, Go's and the
// process's metrics; kanto_can_scrape_error names the part that failed.
// The failure is logged once, and its end once.
func TestMetricsServedWithoutCanGW(t *testing.T) {
	k := fakekernel.New()
	h := newHost(t, k)
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "can0", Kind: "can", Up: true})
	attachTo(t, k, h, "1", "can0")
	g := &gwSwitch{k: k}
	g.unloaded.Store(true)
	var logs logBuffer
	m := newMetrics(metricsSource{open: g.open(h.Records()), names: func() map[string]string { return nil }, log: newLog(&logs)})

	for range 3 {
		fams := scrape(t, m)
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"kanto_can_scrape_error", map[string]string{"part": "attachments"}, 1},
			{"kanto_can_scrape_error", map[string]string{"part": "buses"}, 0},
			{"kanto_can_attachments", nil, 1},
			{"kanto_can_bus_up", map[string]string{"bus": "can0"}, 1},
			{"kanto_can_bus_attachments", map[string]string{"bus": "can0"}, 1},
			{"kanto_can_reconciles_total", map[string]string{"result": "ok"}, 0},
		} {
			if got, ok := fams.Value(c.name, c.labels); !ok || got != c.want {
				t.Errorf("without can-gw: %s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
			}
		}
		for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
			if fams[name] == nil {
				t.Errorf("without can-gw: no %s", name)
			}
		}
		if fams["kanto_can_frames_total"] != nil {
			t.Error("without can-gw: frame counters served, read from where?")
		}
	}
	if n := logs.count("level=WARN", "can-gw kernel module is not loaded"); n != 1 {
		t.Errorf("%d warnings for 3 failed scrapes, want 1:\n%s", n, logs.String())
	}

	g.unloaded.Store(false)
	for range 2 {
		fams := scrape(t, m)
		if got, ok := fams.Value("kanto_can_scrape_error", map[string]string{"part": "attachments"}); !ok || got != 0 {
			t.Errorf("with can-gw again: scrape error %v (%v)", got, ok)
		}
		if got, ok := fams.Value("kanto_can_frames_total", map[string]string{"direction": "rx", "result": "handled"}); !ok || got != 0 {
			t.Errorf("with can-gw again: rx handled %v (%v)", got, ok)
		}
	}
	if n := logs.count("level=INFO", "metrics", "again"); n != 1 {
		t.Errorf("%d lines for the recovery, want 1:\n%s", n, logs.String())
	}
}

// Without can-gw the rule audit fails every interval: one warning when it
// starts, one line when it ends, counted as errors in the metrics.
func TestAuditFailureLoggedOnce(t *testing.T) {
	k := fakekernel.New()
	h := newHost(t, k)
	k.AddLink(fakekernel.Host, fakekernel.Link{Name: "can0", Kind: "can", Up: true})
	attachTo(t, k, h, "1", "can0")
	g := &gwSwitch{k: k}
	var logs logBuffer
	d := &Daemon{host: h, log: newLog(&logs), kick: make(chan struct{}, 1),
		metrics: newMetrics(metricsSource{open: g.open(h.Records()), names: func() map[string]string { return nil }})}
	lc, gc := canlink.NewConn(nltest.Dial(g.fn)), cangw.NewConn(nltest.Dial(g.fn))

	last := d.auditOnce(lc, gc, nil)
	g.unloaded.Store(true)
	for range 5 {
		last = d.auditOnce(lc, gc, last)
	}
	if n := logs.count("level=WARN", "rule audit", "can-gw kernel module is not loaded"); n != 1 {
		t.Errorf("%d warnings for 5 failed audits, want 1:\n%s", n, logs.String())
	}
	if got := counter(t, d.metrics.audits.WithLabelValues("error")); got != 5 {
		t.Errorf("audits with an error: %v, want 5", got)
	}
	g.unloaded.Store(false)
	for range 3 {
		last = d.auditOnce(lc, gc, last)
	}
	if n := logs.count("level=INFO", "rule audit", "works again"); n != 1 {
		t.Errorf("%d lines for the recovery, want 1:\n%s", n, logs.String())
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings in all, want 1:\n%s", n, logs.String())
	}
}

// openNowhere is a host that cannot be opened (no netlink here).
func openNowhere(...attach.Option) (*attach.Host, error) {
	return nil, errors.New("no netlink in this test")
}
