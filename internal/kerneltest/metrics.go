package kerneltest

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a Prometheus endpoint.
type Metrics map[string]*dto.MetricFamily

// Scrape reads the metrics served at url (http://HOST:PORT/metrics) with
// Prometheus' own text parser, failing the test on any error.
func Scrape(tb testing.TB, url string) Metrics {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	return fams
}

// Value returns the value of the one series of the named metric whose
// labels include all of labels (a counter's, gauge's or untyped value), and
// whether there is exactly one.
func (m Metrics) Value(name string, labels map[string]string) (float64, bool) {
	fam := m[name]
	if fam == nil {
		return 0, false
	}
	var found []*dto.Metric
	for _, s := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	s := found[0]
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue(), true
	case s.Gauge != nil:
		return s.Gauge.GetValue(), true
	case s.Untyped != nil:
		return s.Untyped.GetValue(), true
	}
	return 0, false
}
