//go:build kernel

package vxcan_test

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/vxcan"
)

func dial(t *testing.T, ns *kerneltest.NS) *vxcan.Conn {
	t.Helper()
	var c *vxcan.Conn
	var err error
	if ns == nil {
		c, err = vxcan.Dial()
	} else {
		f, ferr := os.Open(ns.Path())
		if ferr != nil {
			t.Fatal(ferr)
		}
		defer f.Close()
		c, err = vxcan.DialNetNS(int(f.Fd()))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The peer is born in the other namespace under its final name (even one
// the host also uses), with the MTU, both ends up, and frames cross.
func TestCreatePeerInNamespace(t *testing.T) {
	kerneltest.Require(t)
	kerneltest.VCAN(t, "can7", 72) // the host has a can7 too: no collision
	ns := kerneltest.NewNS(t)
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	host := dial(t, nil)
	for _, mtu := range []int{vxcan.MTUClassic, vxcan.MTUFD} {
		end, err := host.Create(vxcan.Pair{Name: "vxt-host", PeerName: "can7", PeerNS: f, MTU: mtu, Alias: "test pair"})
		if err != nil {
			t.Fatal(err)
		}
		if end.Name != "vxt-host" || end.Kind != "vxcan" || !end.IsCAN() || end.MTU != mtu || !end.Up || end.Alias != "test pair" || end.PeerNetNSID < 0 {
			t.Fatalf("host end %+v", end)
		}
		peer, err := dial(t, ns).LinkByName("can7")
		if err != nil {
			t.Fatal(err)
		}
		if peer.Kind != "vxcan" || peer.MTU != mtu || !peer.Up || peer.Index != end.PeerIndex {
			t.Fatalf("peer %+v (host end says peer index %d)", peer, end.PeerIndex)
		}
		a := kerneltest.Open(t, nil, "vxt-host")
		b := kerneltest.Open(t, ns, "can7")
		a.Send(t, kerneltest.Frame{ID: 0x42, Data: []byte{1, 2}})
		b.Expect(t, []kerneltest.Frame{{ID: 0x42, Data: []byte{1, 2}}}, 5*time.Second)
		if mtu == vxcan.MTUFD {
			b.Send(t, kerneltest.Frame{ID: 0x43, FD: true, Data: make([]byte, 64)})
			a.Expect(t, []kerneltest.Frame{{ID: 0x43, FD: true, Data: make([]byte, 64)}}, 5*time.Second)
		}
		pairs, err := host.Pairs()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range pairs {
			found = found || p.Name == "vxt-host"
		}
		if !found {
			t.Fatalf("Pairs() = %+v, lacks vxt-host", pairs)
		}
		if err := host.Delete(end.Index); err != nil {
			t.Fatal(err)
		}
		if _, err := dial(t, ns).LinkByName("can7"); !errors.Is(err, vxcan.ErrNotFound) {
			t.Fatalf("peer after deleting the host end: %v, want ErrNotFound", err)
		}
	}
}

// Taken names fail with EEXIST and leave nothing behind.
func TestCreateNameTaken(t *testing.T) {
	kerneltest.Require(t)
	ns := kerneltest.NewNS(t)
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out, err := ns.Command("ip", "link", "add", "busy0", "type", "vcan").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	kerneltest.VCAN(t, "busyhost", 72)
	host := dial(t, nil)
	for _, p := range []vxcan.Pair{
		{Name: "vxt-a", PeerName: "busy0", PeerNS: f},
		{Name: "busyhost", PeerName: "free0", PeerNS: f},
	} {
		if _, err := host.Create(p); !errors.Is(err, unix.EEXIST) {
			t.Errorf("Create(%s, %s) = %v, want EEXIST", p.Name, p.PeerName, err)
		}
	}
	if _, err := host.LinkByName("vxt-a"); !errors.Is(err, vxcan.ErrNotFound) {
		t.Errorf("vxt-a after a failed create: %v", err)
	}
	if _, err := dial(t, ns).LinkByName("free0"); !errors.Is(err, vxcan.ErrNotFound) {
		t.Errorf("free0 after a failed create: %v", err)
	}
	if _, err := host.Create(vxcan.Pair{Name: "vxt-b", PeerName: "x", MTU: 50}); err == nil {
		t.Error("MTU 50 accepted")
	}
}

func TestLinkByNameMissing(t *testing.T) {
	kerneltest.Require(t)
	if _, err := dial(t, nil).LinkByName("nosuch9"); !errors.Is(err, vxcan.ErrNotFound) {
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
	c := dial(t, nil)
	check := func(wantState vxcan.CANState, wantUp bool) {
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
	check(vxcan.CANStateErrorActive, true)
	kerneltest.MustRun(t, "ip", "link", "set", bus, "down")
	check(vxcan.CANStateStopped, false)
	kerneltest.MustRun(t, "ip", "link", "set", bus, "up")
	check(vxcan.CANStateErrorActive, true)

	kerneltest.VCAN(t, "vcinfo0", 72)
	if l, err := c.LinkByName("vcinfo0"); err != nil || l.CAN != nil {
		t.Fatalf("vcan: %+v, %v", l, err)
	}
}
