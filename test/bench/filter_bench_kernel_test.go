//go:build kernel

package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// filterCase is one container on a bus of its own, with n exact-id receive
// filters (one can-gw rule each; 0 = one rule without a filter).
type filterCase struct {
	n              int
	id             uint32 // the flooded id, allowed by the filters
	t              *target.Target
	sender, inside *kerneltest.Socket
	rates, gwRates []float64
	lat            []time.Duration
	lostGW, lost   int
}

// BenchmarkFilters measures what receive filters cost the gateway: with no
// filter, 8 and 64 exact-id filters. A sender on the bus floods frames whose
// id the filters allow; the container counts what arrives. Reported per
// case: frames/s through the gateway (and frames lost in the gateway and end
// to end), latency p50/p99 of single frames (bus -> container), and
// throughput relative to the unfiltered case. Each case has its own bus and
// container, and every iteration runs all cases in turn, so drifts of the
// emulated machine's speed hit them alike. Medians over b.N iterations.
func BenchmarkFilters(b *testing.B) {
	kerneltest.Require(b)
	host, err := attach.OpenHost()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	var cases []*filterCase
	for _, n := range []int{0, 8, 64} {
		busName := fmt.Sprintf("fbus%d", n)
		kerneltest.VCAN(b, busName, 16)
		spec := busName + ":can0,dir=rx"
		if n > 0 {
			var ids []string
			for i := 0; i < n; i++ {
				ids = append(ids, fmt.Sprintf("%03X", 0x100+4*i)) // not adjacent: one rule each
			}
			spec += ",rx=" + strings.Join(ids, ",")
		}
		bus, err := request.ParseBus(spec)
		if err != nil {
			b.Fatal(err)
		}
		ns := kerneltest.NewNS(b)
		t, err := target.FromPath(ns.Path())
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		res, err := host.Attach(t, grant([]request.Bus{bus}))
		if err != nil {
			b.Fatal(err)
		}
		defer host.Detach(t, nil)
		if rules := len(res[0].Plan.Rules); rules != max(1, n) {
			b.Fatalf("%d rules, want %d", rules, max(1, n))
		}
		c := &filterCase{n: n, id: uint32(0x100 + 4*(n/2)), t: t,
			sender: kerneltest.Open(b, nil, busName), inside: kerneltest.Open(b, ns, "can0")}
		// A big receive buffer, so that the reader keeps up; the gateway's
		// counters tell its losses from the reader's anyway.
		if err := unix.SetsockoptInt(c.inside.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
			b.Fatal(err)
		}
		cases = append(cases, c)
	}
	handled := func(t *target.Target) uint64 {
		list, err := host.List()
		if err != nil {
			b.Fatal(err)
		}
		var sum uint64
		for _, a := range list {
			if a.Target == t.ID {
				for _, r := range a.Rules {
					sum += uint64(r.Handled)
				}
			}
		}
		return sum
	}
	const flood = 20000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range cases {
			// Latency: one frame at a time.
			for j := 0; j < 100; j++ {
				start := time.Now()
				c.sender.Send(b, kerneltest.Frame{ID: c.id, Data: []byte{byte(j)}})
				if _, err := c.inside.Recv(10 * time.Second); err != nil {
					b.Fatal(err)
				}
				c.lat = append(c.lat, time.Since(start))
			}
			// Throughput: a flood, counted until an end marker (same path,
			// same order) arrives.
			done := make(chan int)
			go func() {
				got := 0
				for {
					f, err := c.inside.Recv(30 * time.Second)
					if err != nil || f.Data[0] == 0xEE {
						done <- got
						return
					}
					got++
				}
			}()
			before := handled(c.t)
			start := time.Now()
			for j := 0; j < flood; j++ {
				send(b, c.sender.Fd(), c.id, 0x11)
			}
			send(b, c.sender.Fd(), c.id, 0xEE)
			got := <-done
			secs := time.Since(start).Seconds()
			gw := handled(c.t) - before
			c.rates = append(c.rates, float64(got)/secs)
			c.gwRates = append(c.gwRates, float64(gw)/secs)
			c.lostGW += flood + 1 - int(gw)
			c.lost += flood - got
		}
	}
	b.StopTimer()
	base := medianF(cases[0].rates)
	b.ReportMetric(0, "ns/op")
	for _, c := range cases {
		p := fmt.Sprintf("/filters=%d", c.n)
		b.ReportMetric(medianF(c.rates), "frames/s"+p)
		b.ReportMetric(medianF(c.gwRates), "gw-handled/s"+p)
		b.ReportMetric(float64(c.lostGW), "lost-in-gw"+p)
		b.ReportMetric(float64(c.lost), "lost-end-to-end"+p)
		b.ReportMetric(float64(percentile(c.lat, 0.5).Microseconds()), "us-p50"+p)
		b.ReportMetric(float64(percentile(c.lat, 0.99).Microseconds()), "us-p99"+p)
		b.ReportMetric(medianF(c.rates)/base, "x-of-unfiltered"+p)
	}
}

// send writes one classic frame, retrying while the queue is full.
func send(b *testing.B, fd int, id uint32, data byte) {
	buf := make([]byte, 16) // struct can_frame
	binary.NativeEndian.PutUint32(buf, id)
	buf[4], buf[8] = 1, data
	for {
		_, err := unix.Write(fd, buf)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.ENOBUFS) {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond) // back-off on a full queue
	}
}

func medianF(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}
