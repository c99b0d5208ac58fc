package canlink

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/rtconn"
	"github.com/kanto-can/kanto-can/nl"
)

// A link message as the kernel sends it for a vxcan host end.
func TestParseLink(t *testing.T) {
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, "kcan0123456789a")
	ae.Uint32(unix.IFLA_MTU, MTUFD)
	ae.String(unix.IFLA_IFALIAS, "kanto-can v1 x")
	ae.Uint32(unix.IFLA_LINK, 2)
	ae.Int32(unix.IFLA_LINK_NETNSID, 0)
	ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
		n.String(unix.IFLA_INFO_KIND, "vxcan")
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := rtconn.Ifinfomsg(17, unix.IFF_UP, 0)
	binary.NativeEndian.PutUint16(msg[2:], arphrdCAN)
	l, err := parseLink(nl.Message{Data: append(msg, attrs...)})
	if err != nil {
		t.Fatal(err)
	}
	want := Link{Index: 17, Name: "kcan0123456789a", Kind: "vxcan", Type: 280, MTU: 72, Up: true, Alias: "kanto-can v1 x", PeerIndex: 2, PeerNetNSID: 0}
	if l != want {
		t.Fatalf("parseLink = %+v, want %+v", l, want)
	}
	if !l.IsCAN() || !l.FD() {
		t.Fatal("IsCAN/FD")
	}
}

func TestParseLinkShort(t *testing.T) {
	if _, err := parseLink(nl.Message{Data: make([]byte, 8)}); err == nil || !strings.Contains(err.Error(), "8 bytes") {
		t.Fatalf("short message: %v", err)
	}
}

// canInfoData encodes the IFLA_INFO_DATA the kernel sends for a CAN
// controller (can_fill_info), with the attributes parseCANInfo skips too.
// bitrate or dataBitrate 0 leave out the bit timing, as the kernel does.
func canInfoData(ae *nl.AttributeEncoder, state, bitrate, dataBitrate, ctrlFlags uint32) {
	bt := func(rate uint32) []byte {
		b := make([]byte, sizeofCANBittiming)
		binary.NativeEndian.PutUint32(b, rate)
		binary.NativeEndian.PutUint32(b[4:], 875) // sample point
		return b
	}
	if bitrate != 0 {
		ae.Bytes(unix.IFLA_CAN_BITTIMING, bt(bitrate))
	}
	ae.Bytes(unix.IFLA_CAN_BITTIMING_CONST, append([]byte("sja1000\x00\x00\x00\x00\x00\x00\x00\x00\x00"), make([]byte, 32)...))
	ae.Uint32(unix.IFLA_CAN_CLOCK, 8000000)
	ae.Uint32(unix.IFLA_CAN_STATE, state)
	cm := make([]byte, sizeofCANCtrlMode)
	binary.NativeEndian.PutUint32(cm[4:], ctrlFlags)
	ae.Bytes(unix.IFLA_CAN_CTRLMODE, cm)
	ae.Uint32(unix.IFLA_CAN_RESTART_MS, 0)
	ae.Bytes(unix.IFLA_CAN_BERR_COUNTER, []byte{1, 0, 2, 0})
	if dataBitrate != 0 {
		ae.Bytes(unix.IFLA_CAN_DATA_BITTIMING, bt(dataBitrate))
	}
}

// canLinkMessage is an RTM_NEWLINK for a CAN controller whose
// IFLA_INFO_DATA data writes.
func canLinkMessage(t testing.TB, name string, mtu uint32, data func(*nl.AttributeEncoder)) nl.Message {
	t.Helper()
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	ae.Uint32(unix.IFLA_MTU, mtu)
	ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
		n.String(unix.IFLA_INFO_KIND, "can")
		n.Nested(unix.IFLA_INFO_DATA, func(d *nl.AttributeEncoder) error {
			data(d)
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := rtconn.Ifinfomsg(3, unix.IFF_UP, 0)
	binary.NativeEndian.PutUint16(msg[2:], arphrdCAN)
	return nl.Message{Data: append(msg, attrs...)}
}

// A CAN controller's state, bitrates and control mode, as the kernel
// reports them.
func TestParseLinkCAN(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		mtu, state, rate, drate, flags uint32
		want                           CANInfo
		wantFD                         bool
	}{
		{"classic up", MTUClassic, unix.CAN_STATE_ERROR_ACTIVE, 500000, 0, unix.CAN_CTRLMODE_BERR_REPORTING,
			CANInfo{State: CANStateErrorActive, Bitrate: 500000, CtrlMode: unix.CAN_CTRLMODE_BERR_REPORTING}, false},
		// After the driver is bound: down, no bit timing.
		{"fresh", MTUClassic, unix.CAN_STATE_STOPPED, 0, 0, 0, CANInfo{State: CANStateStopped}, false},
		{"fd", MTUFD, unix.CAN_STATE_ERROR_PASSIVE, 1000000, 8000000, unix.CAN_CTRLMODE_FD | unix.CAN_CTRLMODE_FD_NON_ISO,
			CANInfo{State: CANStateErrorPassive, Bitrate: 1000000, DataBitrate: 8000000, CtrlMode: 0xa0}, true},
		{"bus-off", MTUClassic, unix.CAN_STATE_BUS_OFF, 250000, 0, 0, CANInfo{State: CANStateBusOff, Bitrate: 250000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := canLinkMessage(t, "can0", tc.mtu, func(d *nl.AttributeEncoder) {
				canInfoData(d, tc.state, tc.rate, tc.drate, tc.flags)
			})
			l, err := parseLink(m)
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != "can" || l.Name != "can0" || l.MTU != int(tc.mtu) || !l.IsCAN() {
				t.Fatalf("link %+v", l)
			}
			if l.CAN == nil {
				t.Fatal("no CAN info")
			}
			// canInfoData sends txerr 1, rxerr 2.
			tc.want.ErrorCounters = &CANErrorCounters{Tx: 1, Rx: 2}
			if !reflect.DeepEqual(*l.CAN, tc.want) {
				t.Fatalf("CAN info %+v, want %+v", *l.CAN, tc.want)
			}
			if l.CAN.FD() != tc.wantFD {
				t.Fatalf("FD() = %v, want %v", l.CAN.FD(), tc.wantFD)
			}
		})
	}
}

// Only links of kind "can" get CAN info, even if another kind carries
// attributes with the same numbers.
func TestParseLinkCANOnlyForControllers(t *testing.T) {
	for _, kind := range []string{"vcan", "vxcan", ""} {
		ae := nl.NewAttributeEncoder()
		ae.String(unix.IFLA_IFNAME, "x")
		ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
			if kind != "" {
				n.String(unix.IFLA_INFO_KIND, kind)
			}
			n.Nested(unix.IFLA_INFO_DATA, func(d *nl.AttributeEncoder) error {
				canInfoData(d, unix.CAN_STATE_BUS_OFF, 500000, 0, 0)
				return nil
			})
			return nil
		})
		attrs, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		l, err := parseLink(nl.Message{Data: append(rtconn.Ifinfomsg(4, 0, 0), attrs...)})
		if err != nil {
			t.Fatalf("kind %q: %v", kind, err)
		}
		if l.CAN != nil {
			t.Fatalf("kind %q: CAN info %+v", kind, *l.CAN)
		}
	}
}

// Without IFLA_CAN_STATE the state is unknown, not error-active (0).
func TestParseLinkCANWithoutState(t *testing.T) {
	l, err := parseLink(canLinkMessage(t, "can0", MTUClassic, func(d *nl.AttributeEncoder) {
		d.Uint32(unix.IFLA_CAN_RESTART_MS, 100)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if l.CAN == nil || l.CAN.State != CANStateUnknown || l.CAN.State.String() != "unknown" {
		t.Fatalf("CAN info %+v", l.CAN)
	}
}

// A malformed CAN attribute fails the parse, naming the attribute.
func TestParseLinkCANMalformed(t *testing.T) {
	for _, tc := range []struct {
		typ  uint16
		size int
		want string
	}{
		{unix.IFLA_CAN_STATE, 2, "IFLA_CAN_STATE: 2 bytes, want 4"},
		{unix.IFLA_CAN_STATE, 8, "IFLA_CAN_STATE: 8 bytes, want 4"},
		{unix.IFLA_CAN_BITTIMING, 4, "IFLA_CAN_BITTIMING: 4 bytes, want at least 32"},
		{unix.IFLA_CAN_DATA_BITTIMING, 31, "IFLA_CAN_DATA_BITTIMING: 31 bytes, want at least 32"},
		{unix.IFLA_CAN_CTRLMODE, 4, "IFLA_CAN_CTRLMODE: 4 bytes, want at least 8"},
	} {
		m := canLinkMessage(t, "can0", MTUClassic, func(d *nl.AttributeEncoder) {
			d.Uint32(unix.IFLA_CAN_CLOCK, 8000000)
			d.Bytes(tc.typ, make([]byte, tc.size))
		})
		_, err := parseLink(m)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "can0") {
			t.Errorf("attribute %d of %d bytes: error %v, want one naming can0 and containing %q", tc.typ, tc.size, err, tc.want)
		}
	}
	// A broken attribute list inside IFLA_INFO_DATA.
	m := canLinkMessage(t, "can0", MTUClassic, func(d *nl.AttributeEncoder) {
		d.Uint32(unix.IFLA_CAN_STATE, 0)
	})
	// Claim the state attribute (the last 8 bytes) is longer than it is.
	binary.NativeEndian.PutUint16(m.Data[len(m.Data)-8:], 12)
	if _, err := parseLink(m); err == nil || !strings.Contains(err.Error(), "CAN info") {
		t.Errorf("broken attribute list: %v", err)
	}
}

func TestCANStateString(t *testing.T) {
	for s, want := range map[CANState]string{
		CANStateErrorActive: "error-active", CANStateErrorWarning: "error-warning", CANStateErrorPassive: "error-passive",
		CANStateBusOff: "bus-off", CANStateStopped: "stopped", CANStateSleeping: "sleeping",
		// From 1<<31 on, a state is an int's negative on 32 bits: it
		// must not pass for an index.
		CANStateUnknown: "unknown", 6: "state 6", 1 << 31: "state 2147483648", 0xfffffffe: "state 4294967294",
	} {
		if got := s.String(); got != want {
			t.Errorf("CANState(%d) = %q, want %q", uint32(s), got, want)
		}
	}
}

// The interface's counters (IFLA_STATS64, the whole struct as the kernel
// sends it) and a CAN controller's error events (IFLA_INFO_XSTATS).
func TestParseLinkStats(t *testing.T) {
	stats := make([]byte, 24*8)
	for i := range 24 {
		binary.NativeEndian.PutUint64(stats[8*i:], uint64(100+i))
	}
	xstats := make([]byte, sizeofCANDeviceStats)
	for i := range 6 {
		binary.NativeEndian.PutUint32(xstats[4*i:], uint32(10+i))
	}
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, "can0")
	ae.Bytes(unix.IFLA_STATS64, stats)
	ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
		n.String(unix.IFLA_INFO_KIND, "can")
		n.Nested(unix.IFLA_INFO_DATA, func(d *nl.AttributeEncoder) error {
			canInfoData(d, unix.CAN_STATE_ERROR_ACTIVE, 500000, 0, 0)
			return nil
		})
		n.Bytes(unix.IFLA_INFO_XSTATS, xstats)
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseLink(nl.Message{Data: append(rtconn.Ifinfomsg(3, unix.IFF_UP, 0), attrs...)})
	if err != nil {
		t.Fatal(err)
	}
	wantStats := LinkStats{RxPackets: 100, TxPackets: 101, RxBytes: 102, TxBytes: 103, RxErrors: 104, TxErrors: 105, RxDropped: 106, TxDropped: 107}
	if l.Stats == nil || *l.Stats != wantStats {
		t.Fatalf("Stats = %+v, want %+v", l.Stats, wantStats)
	}
	wantCAN := CANDeviceStats{BusErrors: 10, ErrorWarning: 11, ErrorPassive: 12, BusOff: 13, ArbitrationLost: 14, Restarts: 15}
	if l.CAN == nil || l.CAN.Stats == nil || *l.CAN.Stats != wantCAN {
		t.Fatalf("CAN stats = %+v, want %+v", l.CAN, wantCAN)
	}

	// A struct shorter than what is read is an error naming the attribute.
	ae = nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, "can0")
	ae.Bytes(unix.IFLA_STATS64, stats[:40])
	attrs, _ = ae.Encode()
	if _, err := parseLink(nl.Message{Data: append(rtconn.Ifinfomsg(3, 0, 0), attrs...)}); err == nil || !strings.Contains(err.Error(), "IFLA_STATS64: 40 bytes") {
		t.Fatalf("short IFLA_STATS64: %v", err)
	}
}
