//go:build kernel

package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/sample"
	"github.com/kanto-can/kanto-can/internal/target"
)

// BenchmarkTopReading measures what one refresh of `kanto-can top` costs:
// one reading (sample.Take: two link dumps, one rule dump, the police
// counters) with N attachments on one bus, in process, reported as the
// median in milliseconds and as the share of one CPU that top's default
// interval of 1 s takes (cpu-%-at-1s).
func BenchmarkTopReading(b *testing.B) {
	kerneltest.Require(b)
	kerneltest.VCAN(b, "topbench", 16)
	host, err := attach.OpenHost(attach.WithPoll())
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	bus, err := request.ParseBus("topbench:can0")
	if err != nil {
		b.Fatal(err)
	}
	var attached []*target.Target
	b.Cleanup(func() {
		for _, t := range attached {
			host.Detach(t, nil)
			t.Close()
		}
	})
	for _, n := range []int{1, 10, 100} {
		for len(attached) < n {
			t, err := target.FromPath(kerneltest.NewNS(b).Path())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := host.Attach(t, grant([]request.Bus{bus})); err != nil {
				b.Fatal(err)
			}
			attached = append(attached, t)
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				s, err := sample.Take(host)
				took = append(took, time.Since(start))
				if err != nil || len(s.Attachments) != n {
					b.Fatalf("reading: %d attachments, %v; want %d", len(s.Attachments), err, n)
				}
			}
			med := median(took)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(ms(med), "ms/reading")
			b.ReportMetric(ms(med)/1000*100, "cpu-%-at-1s")
		})
	}
}
