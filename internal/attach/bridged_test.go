package attach

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
)

// Only a vcan whose alias is ours and names this target is ours to
// replace or delete inside a container.
func TestIsOurVCAN(t *testing.T) {
	alias, err := Meta{Target: "netns:7", HostBus: "can0", Inside: "can0", Label: "pid 1"}.Alias()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		l      canlink.Link
		target string
		want   bool
	}{
		{canlink.Link{Kind: "vcan", Alias: alias}, "netns:7", true},
		{canlink.Link{Kind: "vcan", Alias: alias}, "netns:8", false},
		{canlink.Link{Kind: "vxcan", Alias: alias}, "netns:7", false},
		{canlink.Link{Kind: "vcan", Alias: "the app's own"}, "netns:7", false},
		{canlink.Link{Kind: "vcan"}, "netns:7", false},
	} {
		if got := isOurVCAN(tc.l, tc.target); got != tc.want {
			t.Errorf("isOurVCAN(%s %q, %s) = %v, want %v", tc.l.Kind, tc.l.Alias, tc.target, got, tc.want)
		}
	}
}

// A bridged record becomes the daemon's sockets' filters: the receive
// allow-list on the host socket, the transmit one on the container's;
// every frame without a list, none for a direction not granted.
func TestBridgeSpec(t *testing.T) {
	rec := record.Record{HostEnd: "kcan0123456789a", Target: "netns:7", Bus: "can0:app0,rx=7E8,tx=7DF",
		TxRate: &request.Rate{FramesPerSecond: 100, Burst: 10}, Bridge: &record.Bridge{NetNS: "/proc/42/ns/net", FD: true}}
	s, err := BridgeSpec(rec)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %s %s %s %v rx=%v tx=%v rate=%v", s.Key, s.NetNS, s.HostBus, s.Inside, s.FD, s.RX, s.TX, *s.Rate)
	want := fmt.Sprintf("kcan0123456789a /proc/42/ns/net can0 app0 true rx=%v tx=%v rate=100/s burst 10",
		[]unix.CanFilter{{Id: 0x7E8, Mask: 0xC00007FF}}, []unix.CanFilter{{Id: 0x7DF, Mask: 0xC00007FF}})
	if got != want {
		t.Errorf("spec:\n got %s\nwant %s", got, want)
	}

	rec.Bus, rec.TxRate = "can0,dir=rx", nil
	if s, err = BridgeSpec(rec); err != nil {
		t.Fatal(err)
	}
	if s.RX != nil || s.TX == nil || len(s.TX) != 0 {
		t.Errorf("dir=rx: rx %v (want nil: every frame), tx %v (want empty: none)", s.RX, s.TX)
	}
	if _, err := BridgeSpec(record.Record{HostEnd: "kcan0123456789a", Bus: "can0"}); err == nil {
		t.Error("a gateway record made a bridge spec")
	}
}
