package canlink

import (
	"encoding/binary"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/rtconn"
	"github.com/kanto-can/kanto-can/nl"
)

// encodeLink is parseLink's inverse for the fields Link keeps.
func encodeLink(t *testing.T, l Link) nl.Message {
	t.Helper()
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, l.Name)
	ae.Uint32(unix.IFLA_MTU, uint32(l.MTU))
	ae.String(unix.IFLA_IFALIAS, l.Alias)
	ae.Uint32(unix.IFLA_LINK, uint32(l.PeerIndex))
	ae.Int32(unix.IFLA_LINK_NETNSID, int32(l.PeerNetNSID))
	if s := l.Stats; s != nil {
		b := make([]byte, 24*8) // the kernel's whole rtnl_link_stats64
		for i, v := range []uint64{s.RxPackets, s.TxPackets, s.RxBytes, s.TxBytes, s.RxErrors, s.TxErrors, s.RxDropped, s.TxDropped} {
			binary.NativeEndian.PutUint64(b[8*i:], v)
		}
		ae.Bytes(unix.IFLA_STATS64, b)
	}
	ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
		n.String(unix.IFLA_INFO_KIND, l.Kind)
		if l.CAN != nil {
			n.Nested(unix.IFLA_INFO_DATA, func(d *nl.AttributeEncoder) error {
				if l.CAN.State != CANStateUnknown {
					d.Uint32(unix.IFLA_CAN_STATE, uint32(l.CAN.State))
				}
				bt := make([]byte, sizeofCANBittiming)
				binary.NativeEndian.PutUint32(bt, l.CAN.Bitrate)
				d.Bytes(unix.IFLA_CAN_BITTIMING, bt)
				dbt := make([]byte, sizeofCANBittiming)
				binary.NativeEndian.PutUint32(dbt, l.CAN.DataBitrate)
				d.Bytes(unix.IFLA_CAN_DATA_BITTIMING, dbt)
				cm := make([]byte, sizeofCANCtrlMode)
				binary.NativeEndian.PutUint32(cm[4:], l.CAN.CtrlMode)
				d.Bytes(unix.IFLA_CAN_CTRLMODE, cm)
				if e := l.CAN.ErrorCounters; e != nil {
					b := make([]byte, sizeofCANBerr)
					binary.NativeEndian.PutUint16(b, e.Tx)
					binary.NativeEndian.PutUint16(b[2:], e.Rx)
					d.Bytes(unix.IFLA_CAN_BERR_COUNTER, b)
				}
				return nil
			})
			if s := l.CAN.Stats; s != nil {
				b := make([]byte, sizeofCANDeviceStats)
				for i, v := range []uint32{s.BusErrors, s.ErrorWarning, s.ErrorPassive, s.BusOff, s.ArbitrationLost, s.Restarts} {
					binary.NativeEndian.PutUint32(b[4*i:], v)
				}
				n.Bytes(unix.IFLA_INFO_XSTATS, b)
			}
		}
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var flags uint32
	if l.Up {
		flags = unix.IFF_UP
	}
	msg := rtconn.Ifinfomsg(int32(l.Index), flags, 0)
	binary.NativeEndian.PutUint16(msg[2:], l.Type)
	return nl.Message{Data: append(msg, attrs...)}
}

// FuzzParseLink checks that decoding never panics, that only links of
// kind "can" get CAN info, and that a decoded link encodes to a message
// that decodes to the same link.
func FuzzParseLink(f *testing.F) {
	seeds := []nl.Message{
		canLinkMessage(f, "can0", MTUClassic, func(d *nl.AttributeEncoder) {
			canInfoData(d, unix.CAN_STATE_ERROR_ACTIVE, 500000, 0, 0)
		}),
		canLinkMessage(f, "can1", MTUFD, func(d *nl.AttributeEncoder) {
			canInfoData(d, unix.CAN_STATE_ERROR_WARNING, 1000000, 5000000, unix.CAN_CTRLMODE_FD)
		}),
		canLinkMessage(f, "can2", MTUClassic, func(d *nl.AttributeEncoder) {
			canInfoData(d, unix.CAN_STATE_STOPPED, 0, 0, 0)
		}),
	}
	for _, m := range seeds {
		f.Add(m.Data)
	}
	f.Add(rtconn.Ifinfomsg(1, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLink(nl.Message{Data: b})
		if err != nil {
			return
		}
		if l.CAN != nil && l.Kind != "can" {
			t.Fatalf("CAN info on a link of kind %q", l.Kind)
		}
		l2, err := parseLink(encodeLink(t, l))
		if err != nil {
			t.Fatalf("decode of re-encoded link %+v: %v", l, err)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("unstable:\n%+v %+v\n%+v %+v", l, l.CAN, l2, l2.CAN)
		}
	})
}
