package attach

import (
	"reflect"
	"testing"

	"github.com/kanto-can/kanto-can/canlink"
)

func TestBusStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		link canlink.Link
		ok   bool
		want HostBusStatus
	}{
		{"controller", canlink.Link{Index: 3, Name: "can0", Kind: "can", MTU: 16, Up: true,
			CAN: &canlink.CANInfo{State: canlink.CANStateErrorWarning, Bitrate: 500000,
				ErrorCounters: &canlink.CANErrorCounters{Tx: 100, Rx: 3}, Stats: &canlink.CANDeviceStats{BusErrors: 7, ErrorWarning: 1}},
			Stats: &canlink.LinkStats{RxPackets: 10, TxPackets: 20, RxBytes: 80, TxBytes: 160, RxErrors: 7, RxDropped: 1}}, true,
			HostBusStatus{Name: "can0", Index: 3, Kind: "can", Up: true, State: "error-warning", Bitrate: 500000, MTU: 16,
				Counters: &BusCounters{RxFrames: 10, TxFrames: 20, RxBytes: 80, TxBytes: 160, RxErrors: 7, RxDropped: 1},
				Errors:   &BusErrors{TxErrorCounter: ptr[uint16](100), RxErrorCounter: ptr[uint16](3), BusErrors: 7, ErrorWarning: 1}}},
		// A controller in FD mode carries FD even if its MTU were classic.
		{"fd controller", canlink.Link{Index: 4, Name: "can1", Kind: "can", MTU: 16,
			CAN: &canlink.CANInfo{State: canlink.CANStateStopped, Bitrate: 1000000, DataBitrate: 8000000, CtrlMode: canlink.CANCtrlModeFD}}, true,
			HostBusStatus{Name: "can1", Index: 4, Kind: "can", State: "stopped", Bitrate: 1000000, DataBitrate: 8000000, FD: true, MTU: 16, Errors: &BusErrors{}}},
		{"vcan", canlink.Link{Index: 5, Name: "vcan0", Kind: "vcan", MTU: 72, Up: true}, true,
			HostBusStatus{Name: "vcan0", Index: 5, Kind: "vcan", Up: true, FD: true, MTU: 72}},
		{"gone", canlink.Link{}, false, HostBusStatus{Name: "can9"}},
	} {
		got := hostBusStatus(tc.want.Name, tc.link, tc.ok)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
