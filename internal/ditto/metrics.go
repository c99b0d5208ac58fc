package ditto

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// MinFrequency is the shortest period of metrics data.
const MinFrequency = time.Second

// metricsRequest is CANMetrics' request message: how often, and which
// measurements (all without a filter).
type metricsRequest struct {
	Frequency time.Duration
	Filter    []metricsFilter
}

// metricsFilter selects measurements: those of originators matching
// Originator (a path.Match pattern, "" for all) whose id matches one of
// IDs (patterns; none for all).
type metricsFilter struct {
	IDs        []string `json:"id"`
	Originator string   `json:"originator"`
}

// parseMetricsRequest reads {"frequency": "5s" | 5, "filter": [...]}.
// A frequency <= 0 stops the data; between 0 and MinFrequency it is
// refused.
func parseMetricsRequest(value []byte) (metricsRequest, error) {
	var raw struct {
		Frequency json.RawMessage `json:"frequency"`
		Filter    []metricsFilter `json:"filter"`
	}
	if err := json.Unmarshal(value, &raw); err != nil {
		return metricsRequest{}, fmt.Errorf("request: %v", err)
	}
	if len(raw.Frequency) == 0 {
		return metricsRequest{}, fmt.Errorf("request: no frequency")
	}
	f, err := parseFrequency(raw.Frequency)
	if err != nil {
		return metricsRequest{}, err
	}
	if f > 0 && f < MinFrequency {
		return metricsRequest{}, fmt.Errorf("frequency %s: at least %s (or <= 0 to stop)", f, MinFrequency)
	}
	for i, fl := range raw.Filter {
		for _, p := range append([]string{fl.Originator}, fl.IDs...) {
			if _, err := path.Match(p, ""); err != nil {
				return metricsRequest{}, fmt.Errorf("filter[%d]: pattern %q: %v", i, p, err)
			}
		}
	}
	return metricsRequest{Frequency: f, Filter: raw.Filter}, nil
}

// parseFrequency reads a duration string ("5s", "1m") or seconds (a
// number, or a string of one).
func parseFrequency(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(raw, &secs); err != nil {
			return 0, fmt.Errorf("frequency %s: want a duration (\"5s\") or seconds", raw)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	s = strings.TrimSpace(s)
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("frequency %q: want a duration (\"5s\") or seconds", s)
	}
	return d, nil
}

// Snapshot is one originator's measurements: a bus (originator
// bus:<ifname>) or a container's attachment to a bus (originator
// container:<id>, the target id without a container id).
type Snapshot struct {
	Originator   string        `json:"originator"`
	Bus          string        `json:"bus"`
	Name         string        `json:"name,omitempty"` // the container's Kanto name
	Measurements []Measurement `json:"measurements"`
}

// Measurement is one counter.
type Measurement struct {
	ID    string  `json:"id"`
	Value float64 `json:"value"`
}

// MetricsData is the value of CANMetrics' data message.
type MetricsData struct {
	Snapshot  []Snapshot `json:"snapshot"`
	Timestamp int64      `json:"timestamp"` // unix seconds
}

// metricsData builds the data of st, filtered.
func metricsData(st State, filter []metricsFilter, now time.Time) MetricsData {
	d := MetricsData{Snapshot: []Snapshot{}, Timestamp: now.Unix()}
	add := func(s Snapshot) {
		s.Measurements = selectMeasurements(s.Originator, s.Measurements, filter)
		if len(s.Measurements) > 0 {
			d.Snapshot = append(d.Snapshot, s)
		}
	}
	for _, b := range st.Buses {
		if b.Index == 0 {
			continue
		}
		add(Snapshot{Originator: "bus:" + b.Name, Bus: b.Name, Measurements: busMeasurements(b)})
	}
	for _, a := range st.Attachments {
		origin := "container:" + AttachmentKey(a)
		if a.Container == "" {
			origin = AttachmentKey(a)
		}
		var ms []Measurement
		sums := map[string]float64{}
		for _, dir := range []string{"rx", "tx"} {
			for _, res := range []string{"handled", "dropped", "deleted"} {
				sums[dir+"."+res] = 0
			}
		}
		for _, r := range a.Rules {
			sums[r.Direction+".handled"] += float64(r.Handled)
			sums[r.Direction+".dropped"] += float64(r.Dropped)
			sums[r.Direction+".deleted"] += float64(r.Deleted)
		}
		for _, dir := range []string{"rx", "tx"} {
			for _, res := range []string{"handled", "dropped", "deleted"} {
				ms = append(ms, Measurement{ID: "frames." + dir + "." + res, Value: sums[dir+"."+res]})
			}
		}
		if a.TxRate != nil {
			ms = append(ms, Measurement{ID: "frames.tx.rate.passed", Value: float64(a.TxRate.Passed)},
				Measurement{ID: "frames.tx.rate.dropped", Value: float64(a.TxRate.Dropped)})
		}
		add(Snapshot{Originator: origin, Bus: a.HostBus, Name: a.Name, Measurements: ms})
	}
	return d
}

// selectMeasurements keeps those the filter selects (all without one).
func selectMeasurements(origin string, ms []Measurement, filter []metricsFilter) []Measurement {
	if len(filter) == 0 {
		return ms
	}
	var out []Measurement
	for _, m := range ms {
		for _, f := range filter {
			if f.Originator != "" {
				if ok, _ := path.Match(f.Originator, origin); !ok {
					continue
				}
			}
			match := len(f.IDs) == 0
			for _, p := range f.IDs {
				if ok, _ := path.Match(p, m.ID); ok {
					match = true
					break
				}
			}
			if match {
				out = append(out, m)
				break
			}
		}
	}
	return out
}
