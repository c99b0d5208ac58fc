package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/sample"
)

func TestTopTables(t *testing.T) {
	load := 12.345
	tx, rx := uint16(100), uint16(3)
	v := sample.View{
		Time: time.Date(2026, 12, 3, 12, 0, 1, 0, time.UTC), Interval: 1,
		Buses: []sample.Bus{
			{Name: "can0", Kind: "can", Up: true, State: "error-warning", Bitrate: 500000, RxPerSecond: 100, TxPerSecond: 10.25, Load: &load,
				Errors: &attach.BusErrors{TxErrorCounter: &tx, RxErrorCounter: &rx}, Attachments: 2},
			{Name: "vcan0", Kind: "vcan", Up: true, FD: true, TxPerSecond: 5, Attachments: 1},
			{Name: "can9", Gone: true, Attachments: 1},
		},
		Attachments: []sample.Attachment{
			{Name: "databroker", Who: "container databroker", HostBus: "can0", Inside: "can0", Direction: "both",
				RxPerSecond: 100, TxPerSecond: 10, RxFrames: 5000, TxFrames: 400,
				TxRate: &sample.TxRate{RateState: attach.RateState{FramesPerSecond: 10, Burst: 1, Passed: 400, Dropped: 90}, DroppedPerSecond: 2.5}},
			{Who: "pid 4242", HostBus: "vcan0", Inside: "vcan0", Direction: "rx", RxPerSecond: 5, RxFrames: 7},
			{Name: "stopped", Who: "container stopped", HostBus: "can0", Inside: "can0", Direction: "tx", Gone: true, TxFrames: 3},
		},
	}
	var b bytes.Buffer
	printTop(&b, v)
	rows := fields(b.String())
	for first, want := range map[string]string{
		"can0":       "can0 error-warning 500000 no 12.3% 100.0 10.2 100 3 2",
		"vcan0":      "vcan0 up - yes - 0.0 5.0 - - 1",
		"can9":       "can9 (gone) - - - - - - - - 1",
		"databroker": "databroker can0 can0 both 100.0 10.0 0.0 2.5 5000 400 0 90",
		"pid":        "pid 4242 vcan0 vcan0 rx 5.0 0.0 0.0 - 7 0 0 0",
		"stopped":    "stopped (gone) can0 can0 tx 0.0 0.0 0.0 - 0 3 0 0",
	} {
		if got := strings.Join(rows[first], " "); got != want {
			t.Errorf("row %s:\n got %s\nwant %s", first, got, want)
		}
	}
	if h := topHeader(v, sample.ByName); h != "kanto-can top  12:00:01  interval 1s  sort name" {
		t.Errorf("header %q", h)
	}

	b.Reset()
	printTop(&b, sample.View{})
	if !strings.Contains(b.String(), "(no bus has attachments)") || !strings.Contains(b.String(), "(no attachments)") {
		t.Errorf("empty view:\n%s", b.String())
	}
}

// Bad flags fail before top reads anything, with one line naming the flag.
func TestTopFlags(t *testing.T) {
	for args, want := range map[string]string{
		"top --sort speed":     `--sort "speed": want rate, name or bus`,
		"top -i 10ms":          "--interval 10ms: want at least 100ms",
		"top -n -1":            "--count -1: want 0 (until quit) or more",
		"top -o json":          "-o json needs --once",
		"top --once -o yaml":   `-o "yaml": want table or json`,
		"top --once extra-arg": `unknown command "extra-arg"`,
	} {
		var out, errOut bytes.Buffer
		if code := Main(strings.Fields(args), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, %q; want %q", args, code, errOut.String(), want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{{"can0  error-active", 4, "can0"}, {"brücke-app", 3, "brü"}, {"brü", 3, "brü"}, {"x", 0, "x"}} {
		if got := truncate(tc.in, tc.width); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}
