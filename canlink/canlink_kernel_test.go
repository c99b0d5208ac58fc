//go:build kernel

package canlink_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

func dial(t *testing.T) *canlink.Conn {
	t.Helper()
	c, err := canlink.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLinkByNameMissing(t *testing.T) {
	kerneltest.Require(t)
	if _, err := dial(t).LinkByName("nosuch9"); !errors.Is(err, canlink.ErrNotFound) {
		t.Fatalf("LinkByName(nosuch9) = %v, want ErrNotFound", err)
	}
}

// ipCANInfo is what `ip -details -json link show` prints of a CAN
// controller: the witness for the package's own decoding.
type ipCANInfo struct {
	Flags    []string `json:"flags"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			State     string   `json:"state"`
			CtrlMode  []string `json:"ctrlmode"`
			BitTiming *struct {
				Bitrate uint32 `json:"bitrate"`
			} `json:"bittiming"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

func ipShow(t *testing.T, name string) ipCANInfo {
	t.Helper()
	out, errOut, code := kerneltest.Run(t, "ip", "-details", "-json", "link", "show", name)
	if code != 0 {
		t.Fatalf("ip link show %s: %s", name, errOut)
	}
	var links []ipCANInfo
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -json link show %s: %v: %s", name, err, out)
	}
	return links[0]
}

// A CAN controller's state, bitrate and control mode as iproute2 shows
// them: up, down, and without a bitrate. Virtual buses have no CAN info.
func TestCANControllerInfo(t *testing.T) {
	bus, _ := kerneltest.Kvaser(t)
	c := dial(t)
	check := func(wantState canlink.CANState, wantUp bool) {
		t.Helper()
		l, err := c.LinkByName(bus)
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind != "can" || l.CAN == nil {
			t.Fatalf("%s: kind %q, CAN info %v", bus, l.Kind, l.CAN)
		}
		ip := ipShow(t, bus)
		if l.CAN.State != wantState || l.CAN.State.String() != strings.ToLower(ip.LinkInfo.Data.State) {
			t.Errorf("%s: state %s, want %s; ip says %s", bus, l.CAN.State, wantState, ip.LinkInfo.Data.State)
		}
		if l.Up != wantUp {
			t.Errorf("%s: up %v, want %v (ip: %v)", bus, l.Up, wantUp, ip.Flags)
		}
		if ip.LinkInfo.Data.BitTiming == nil || l.CAN.Bitrate != ip.LinkInfo.Data.BitTiming.Bitrate || l.CAN.Bitrate != kerneltest.KvaserBitrate {
			t.Errorf("%s: bitrate %d, want %d; ip says %+v", bus, l.CAN.Bitrate, kerneltest.KvaserBitrate, ip.LinkInfo.Data.BitTiming)
		}
		// The emulated SJA1000 is classic only.
		if l.CAN.FD() || l.CAN.DataBitrate != 0 || slices.Contains(ip.LinkInfo.Data.CtrlMode, "FD") {
			t.Errorf("%s: FD %v, data bitrate %d; ip ctrlmode %v", bus, l.CAN.FD(), l.CAN.DataBitrate, ip.LinkInfo.Data.CtrlMode)
		}
	}
	check(canlink.CANStateErrorActive, true)
	kerneltest.MustRun(t, "ip", "link", "set", bus, "down")
	check(canlink.CANStateStopped, false)
	kerneltest.MustRun(t, "ip", "link", "set", bus, "up")
	check(canlink.CANStateErrorActive, true)

	kerneltest.VCAN(t, "vcinfo0", 72)
	if l, err := c.LinkByName("vcinfo0"); err != nil || l.CAN != nil {
		t.Fatalf("vcan: %+v, %v", l, err)
	}
}

// The interface counters and a controller's error counters, against the
// frames sent and against iproute2: frames from the ECU's controller
// count as received on the bus's and sent on the ECU's.
func TestLinkStats(t *testing.T) {
	bus, ecu := kerneltest.Kvaser(t)
	c := dial(t)
	stats := func(name string) (canlink.LinkStats, *canlink.CANInfo) {
		t.Helper()
		l, err := c.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Stats == nil || l.CAN == nil {
			t.Fatalf("%s: stats %v, CAN info %v", name, l.Stats, l.CAN)
		}
		return *l.Stats, l.CAN
	}
	busBefore, _ := stats(bus)
	ecuBefore, _ := stats(ecu)
	recv := kerneltest.Open(t, nil, bus)
	send := kerneltest.Open(t, nil, ecu)
	frames := []kerneltest.Frame{{ID: 0x100, Data: []byte{1, 2, 3}}, {ID: 0x101, Data: []byte{4}}, {ID: 0x102}}
	for _, f := range frames {
		send.Send(t, f)
	}
	recv.Expect(t, frames, 5*time.Second)
	busAfter, info := stats(bus)
	ecuAfter, _ := stats(ecu)
	if d := busAfter.RxPackets - busBefore.RxPackets; d != 3 {
		t.Errorf("%s: %d frames received, want 3", bus, d)
	}
	if d := busAfter.RxBytes - busBefore.RxBytes; d != 4 {
		t.Errorf("%s: %d bytes received, want 4", bus, d)
	}
	if d := ecuAfter.TxPackets - ecuBefore.TxPackets; d != 3 {
		t.Errorf("%s: %d frames sent, want 3", ecu, d)
	}

	// iproute2's view of the same counters and of the error counters.
	out, errOut, code := kerneltest.Run(t, "ip", "-details", "-statistics", "-json", "link", "show", bus)
	if code != 0 {
		t.Fatalf("ip link show %s: %s", bus, errOut)
	}
	var ip []struct {
		Stats64 struct {
			Rx struct{ Packets uint64 } `json:"rx"`
		} `json:"stats64"`
		LinkInfo struct {
			Data struct {
				Berr *struct{ Tx, Rx uint16 } `json:"berr_counter"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(out), &ip); err != nil || len(ip) != 1 {
		t.Fatalf("ip -json: %v: %s", err, out)
	}
	if ip[0].Stats64.Rx.Packets != busAfter.RxPackets {
		t.Errorf("%s: %d frames received, ip says %d", bus, busAfter.RxPackets, ip[0].Stats64.Rx.Packets)
	}
	if e, want := info.ErrorCounters, ip[0].LinkInfo.Data.Berr; e == nil || want == nil || e.Tx != want.Tx || e.Rx != want.Rx {
		t.Errorf("%s: error counters %+v, ip says %+v", bus, e, want)
	}
	if info.Stats == nil {
		t.Errorf("%s: no CAN device stats", bus)
	}
}
