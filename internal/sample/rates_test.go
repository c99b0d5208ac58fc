package sample

import (
	"math"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func att(end string, index int, name string, rxHandled, txHandled, dropped uint32) attach.Attachment {
	return attach.Attachment{
		Label: "pid 1", Container: "id-" + name, Name: name, HostBus: "can0", Inside: "can0", HostEnd: end, HostEndIndex: index,
		Rules: []attach.RuleState{
			{Direction: "rx", Handled: rxHandled, Dropped: dropped},
			{Direction: "tx", Handled: txHandled},
		},
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Rates over two seconds, totals at the end, a new attachment counted from
// zero, a gone one kept with its last totals.
func TestBetween(t *testing.T) {
	limited := att("kcanb", 11, "b", 0, 500, 0)
	limited.TxRate = &attach.RateState{FramesPerSecond: 100, Burst: 10, Passed: 500, Dropped: 1000}
	limitedLater := att("kcanb", 11, "b", 0, 700, 0)
	limitedLater.TxRate = &attach.RateState{FramesPerSecond: 100, Burst: 10, Passed: 700, Dropped: 1800}
	prev := Sample{Time: t0, Attachments: []attach.Attachment{
		att("kcana", 10, "a", 100, 10, 0), limited, att("kcanc", 12, "c", 5, 5, 0),
	}}
	cur := Sample{Time: t0.Add(2 * time.Second), Attachments: []attach.Attachment{
		att("kcana", 10, "a", 300, 30, 4), limitedLater, att("kcand", 13, "d", 20, 0, 0),
	}}
	v := Between(prev, cur)
	if v.Interval != 2 {
		t.Fatalf("interval %v", v.Interval)
	}
	byEnd := map[string]Attachment{}
	for _, a := range v.Attachments {
		byEnd[a.HostEnd] = a
	}
	for _, tc := range []struct {
		end                       string
		rx, tx, drops, limitDrops float64
		gone                      bool
		rxTotal, txTotal          uint64
	}{
		{"kcana", 100, 10, 2, 0, false, 300, 30},
		{"kcanb", 0, 100, 0, 400, false, 0, 700},
		{"kcand", 10, 0, 0, 0, false, 20, 0}, // new: from 0
		{"kcanc", 0, 0, 0, 0, true, 5, 5},    // gone
	} {
		a, ok := byEnd[tc.end]
		if !ok {
			t.Fatalf("%s missing from %+v", tc.end, v.Attachments)
		}
		limitDrops := 0.0
		if a.TxRate != nil {
			limitDrops = a.TxRate.DroppedPerSecond
		}
		if !near(a.RxPerSecond, tc.rx) || !near(a.TxPerSecond, tc.tx) || !near(a.DroppedPerSecond, tc.drops) ||
			!near(limitDrops, tc.limitDrops) || a.Gone != tc.gone || a.RxFrames != tc.rxTotal || a.TxFrames != tc.txTotal {
			t.Errorf("%s: %+v, want %+v", tc.end, a, tc)
		}
	}
	if r := byEnd["kcanb"].TxRate; r == nil || r.FramesPerSecond != 100 || r.Burst != 10 || r.Passed != 700 || r.Dropped != 1800 {
		t.Errorf("kcanb tx_rate %+v, want the limit 100/s burst 10, 700 passed, 1800 dropped", r)
	}
	if r := byEnd["kcana"].TxRate; r != nil {
		t.Errorf("kcana has no limit, tx_rate %+v", r)
	}
	// Gone ones last.
	if last := v.Attachments[len(v.Attachments)-1]; last.HostEnd != "kcanc" {
		t.Errorf("last is %s, want the gone kcanc", last.HostEnd)
	}
}

// A host end made again (same name, new ifindex) is a new attachment, not
// a counter going back.
func TestBetweenRecreated(t *testing.T) {
	v := Between(
		Sample{Time: t0, Attachments: []attach.Attachment{att("kcana", 10, "a", 1000, 0, 0)}},
		Sample{Time: t0.Add(time.Second), Attachments: []attach.Attachment{att("kcana", 20, "a", 7, 0, 0)}})
	if len(v.Attachments) != 2 {
		t.Fatalf("%+v", v.Attachments)
	}
	if a := v.Attachments[0]; a.Gone || a.RxPerSecond != 7 {
		t.Errorf("new one: %+v", a)
	}
	if a := v.Attachments[1]; !a.Gone || a.RxFrames != 1000 {
		t.Errorf("old one: %+v", a)
	}
}

func TestDelta32(t *testing.T) {
	for _, tc := range []struct {
		prev, cur uint32
		want      uint64
	}{
		{10, 25, 15},
		{math.MaxUint32 - 4, 5, 10}, // wrapped
		{1000, 3, 3},                // rule made again
		{0, 0, 0},
	} {
		if got := delta32(tc.prev, tc.cur); got != tc.want {
			t.Errorf("delta32(%d, %d) = %d, want %d", tc.prev, tc.cur, got, tc.want)
		}
	}
}

// Bus rates and load; no load without a bitrate; a bus made again (new
// ifindex) has no rates until the next sample.
func TestBusBetween(t *testing.T) {
	ctr := func(index int, rx, tx, bytes uint64) attach.HostBusStatus {
		return attach.HostBusStatus{Name: "can0", Index: index, Kind: "can", Up: true, State: "error-active", Bitrate: 500000,
			Counters: &attach.BusCounters{RxFrames: rx, TxFrames: tx, RxBytes: bytes}}
	}
	b := busBetween(ctr(3, 1000, 0, 0), ctr(3, 1500, 500, 8000), 2)
	if b.RxPerSecond != 250 || b.TxPerSecond != 250 {
		t.Errorf("rates %v %v", b.RxPerSecond, b.TxPerSecond)
	}
	// 1000 frames of 47 bits + 8000 bytes in 2 s at 500 kbit/s.
	if want := (1000*47.0 + 8000*8) / 2 / 500000 * 100; b.Load == nil || !near(*b.Load, want) {
		t.Errorf("load %v, want %v", b.Load, want)
	}
	if b := busBetween(ctr(3, 1000, 0, 0), ctr(4, 10, 0, 0), 1); b.RxPerSecond != 0 || b.Load != nil {
		t.Errorf("re-created bus: %+v", b)
	}
	vcan := func(tx uint64) attach.HostBusStatus {
		return attach.HostBusStatus{Name: "vcan0", Index: 5, Kind: "vcan", Up: true, Counters: &attach.BusCounters{TxFrames: tx, RxFrames: tx}}
	}
	if b := busBetween(vcan(0), vcan(100), 1); b.TxPerSecond != 100 || b.Load != nil {
		t.Errorf("vcan: %+v", b)
	}
	if b := busBetween(attach.HostBusStatus{}, attach.HostBusStatus{Name: "can9"}, 1); !b.Gone {
		t.Errorf("gone bus: %+v", b)
	}
}

func TestLoad(t *testing.T) {
	// 1000 frames of 8 bytes a second at 125 kbit/s: 111 bits each.
	if got := Load(1000, 8000, 125000, 1); !near(got, 88.8) {
		t.Errorf("Load = %v, want 88.8", got)
	}
	if Load(10, 0, 0, 1) != 0 || Load(10, 0, 500000, 0) != 0 {
		t.Error("Load without a bitrate or time must be 0")
	}
}

func TestSort(t *testing.T) {
	list := []Attachment{
		{Who: "b", HostBus: "can0", RxPerSecond: 5},
		{Who: "a", HostBus: "can1", RxPerSecond: 50, Gone: true},
		{Who: "c", HostBus: "can0", TxPerSecond: 20},
	}
	order := func() (s string) {
		for _, a := range list {
			s += a.Who
		}
		return s
	}
	for _, tc := range []struct {
		o    Order
		want string
	}{{ByRate, "cba"}, {ByName, "bca"}, {ByBus, "bca"}} {
		Sort(list, tc.o)
		if got := order(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.o, got, tc.want)
		}
	}
	for _, s := range []string{"rate", "name", "bus"} {
		if o, ok := ParseOrder(s); !ok || o.String() != s {
			t.Errorf("ParseOrder(%s) = %v, %v", s, o, ok)
		}
	}
	if _, ok := ParseOrder("speed"); ok {
		t.Error("ParseOrder(speed) ok")
	}
}
