// Package leftover finds what kanto-can made and left behind in the test
// guest: host ends, the gateway rules that name them, and records. Every
// test that detaches, removes or refuses ends with it. Kernel tests only.
package leftover

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Ours lists kanto-can's host ends and the gateway rules naming them.
func Ours(tb testing.TB) (hostEnds []string, rules []cangw.Rule) {
	tb.Helper()
	links, err := canlink.Dial()
	if err != nil {
		tb.Fatal(err)
	}
	defer links.Close()
	all, err := links.Links()
	if err != nil {
		tb.Fatal(err)
	}
	idx := map[int]bool{}
	for _, l := range all {
		if strings.HasPrefix(l.Name, attach.HostEndPrefix) {
			idx[l.Index] = true
			hostEnds = append(hostEnds, l.Name)
		}
	}
	gw, err := cangw.Dial()
	if err != nil {
		tb.Fatal(err)
	}
	defer gw.Close()
	allRules, err := gw.List()
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range allRules {
		if idx[r.Src] || idx[r.Dst] {
			rules = append(rules, r)
		}
	}
	return hostEnds, rules
}

// Describe lists kanto-can's host ends, the gateway rules naming them and
// its records in records: "" when nothing of ours is left.
func Describe(tb testing.TB, records string) string {
	tb.Helper()
	hostEnds, rules := Ours(tb)
	var left []string
	for _, l := range hostEnds {
		left = append(left, "link "+l)
	}
	for _, r := range rules {
		left = append(left, fmt.Sprintf("rule %d>%d", r.Src, r.Dst))
	}
	recs, err := record.List(records)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		left = append(left, "record "+r.HostEnd)
	}
	return strings.Join(left, ", ")
}

// RequireNone fails the test when a host end, rule or record (in records)
// of kanto-can is left.
func RequireNone(tb testing.TB, records string) {
	tb.Helper()
	if left := Describe(tb, records); left != "" {
		tb.Fatalf("left behind: %s", left)
	}
}

// AwaitNone waits, on the records directory's changes, until it holds no
// record, then requires that nothing is left (RequireNone). For a detach
// that runs elsewhere (a CNI DEL, the daemon): it deletes the host ends
// first and then their records, so once the records are gone all is.
func AwaitNone(tb testing.TB, records string, timeout time.Duration) {
	tb.Helper()
	err := kerneltest.AwaitFiles(timeout, nil, func(add func(string, uint32)) {
		add(records, unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_CREATE|unix.IN_MOVED_TO)
	}, func() bool {
		recs, _ := record.List(records)
		return len(recs) == 0
	})
	if err != nil {
		tb.Fatalf("records still there: %v: %s", err, Describe(tb, records))
	}
	RequireNone(tb, records)
}
