package attach

import (
	"testing"

	"github.com/kanto-can/kanto-can/internal/record"
)

func TestScope(t *testing.T) {
	var s Scope
	if !s.Empty() {
		t.Fatal("the zero scope is not empty")
	}
	s.Merge(Scope{HostBuses: []string{"can0"}})
	s.Merge(Scope{HostBuses: []string{"can0"}, Containers: []string{"app"}})
	if s.Empty() || s.Full || len(s.HostBuses) != 1 || len(s.Containers) != 1 {
		t.Fatalf("merged: %+v", s)
	}
	onCan0 := record.Record{HostEnd: "kcan00000000001", Bus: "can0"}
	ofApp := record.Record{HostEnd: "kcan00000000002", Bus: "can1", Container: "app"}
	other := record.Record{HostEnd: "kcan00000000003", Bus: "can1", Container: "db"}
	for _, c := range []struct {
		rec  record.Record
		want bool
	}{{onCan0, true}, {ofApp, true}, {other, false}} {
		if got := s.covers(c.rec, recordHostBus(c.rec)); got != c.want {
			t.Errorf("covers %+v = %v, want %v", c.rec, got, c.want)
		}
	}
	if !(Scope{HostEnds: []string{other.HostEnd}}).covers(other, "can1") {
		t.Error("a host end's scope does not cover its record")
	}
	if (Scope{HostEnds: []string{other.HostEnd}}).syncs(other, "can1") {
		t.Error("a host end's scope re-syncs its rules")
	}
	if !(Scope{Full: true}).covers(other, "can1") {
		t.Error("a full scope does not cover everything")
	}
	if (Scope{Containers: []string{""}}).covers(onCan0, "can0") {
		t.Error("an empty container id covers records without a container")
	}
}
