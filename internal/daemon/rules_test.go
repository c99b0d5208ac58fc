package daemon

import (
	"reflect"
	"testing"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
)

// The audit's decision: a host end of ours that lost rules since the last
// count, or has none at its first count while its bus is there, asks for
// its bus; foreign links and rules count for nothing.
func TestRulesLost(t *testing.T) {
	end := func(index int, name, bus string) canlink.Link {
		alias, err := attach.Meta{Target: "netns:1", HostBus: bus, Inside: "can0"}.Alias()
		if err != nil {
			t.Fatal(err)
		}
		return canlink.Link{Index: index, Name: name, Kind: "vxcan", Alias: alias}
	}
	links := []canlink.Link{
		{Index: 1, Name: "can0", Kind: "can"},
		{Index: 2, Name: "vcan0", Kind: "vcan"},
		end(10, "kcan00000000010", "can0"),
		end(11, "kcan00000000011", "can0"),
		end(12, "kcan00000000012", "vcan0"),
		end(13, "kcan00000000013", "gone0"), // optional bus, missing: no rules
		{Index: 20, Name: "fgnvx0", Kind: "vxcan"},
	}
	full := []cangw.Rule{
		{Src: 1, Dst: 10}, {Src: 10, Dst: 1},
		{Src: 1, Dst: 11}, {Src: 11, Dst: 1},
		{Src: 2, Dst: 12}, {Src: 12, Dst: 2},
		{Src: 1, Dst: 20}, // foreign
	}
	counts, lost := rulesLost(links, full, nil)
	if len(lost) != 0 || !reflect.DeepEqual(counts, map[int]int{10: 2, 11: 2, 12: 2, 13: 0}) {
		t.Fatalf("all there: counts %v, lost %v", counts, lost)
	}
	// cangw -F: everything gone, ours and foreign.
	if _, lost := rulesLost(links, nil, counts); !reflect.DeepEqual(lost, []string{"can0", "vcan0"}) {
		t.Errorf("after a flush: lost %v, want can0 and vcan0", lost)
	}
	// One rule of one host end gone.
	if _, lost := rulesLost(links, full[1:], counts); !reflect.DeepEqual(lost, []string{"can0"}) {
		t.Errorf("one rule gone: lost %v", lost)
	}
	// A foreign rule gone: nothing of ours.
	if _, lost := rulesLost(links, full[:6], counts); len(lost) != 0 {
		t.Errorf("a foreign rule gone: lost %v", lost)
	}
	// First count after a start with a host end without rules on a present
	// bus: ask once; at zero again next time: do not ask again.
	counts, lost = rulesLost(links, full[2:], nil)
	if !reflect.DeepEqual(lost, []string{"can0"}) {
		t.Errorf("first count, host end without rules: lost %v", lost)
	}
	if _, lost := rulesLost(links, full[2:], counts); len(lost) != 0 {
		t.Errorf("still without rules: asked again: %v", lost)
	}
}
