//go:build kernel

package bench

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// BenchmarkBridgeDaemonRestart measures what bridge mode loses when
// kanto-can-daemon dies and starts again: a bridged container receives a
// paced stream of numbered frames (restartRate per second) from the host
// bus; after restartWarm frames the daemon is killed (SIGKILL) and started
// at once, and the stream goes on until restartWarm more frames have come
// through. Reported per restart: restore-ms (the new daemon's exec to the
// first frame carried again: its process start, first reconcile and the
// bridges put back from the records), outage-ms (the last frame before the
// kill to the first after), and lost-frames (sent while no bridge ran).
// Under systemd, RestartSec (1 s in the unit) adds to the outage, and
// restartRate frames per second of it to the loss. The gateway path (vxcan
// and can-gw in the kernel) loses nothing across a restart.
func BenchmarkBridgeDaemonRestart(b *testing.B) {
	const restartRate, restartWarm = 500, 200
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	const bus = "bdrbus"
	kerneltest.VCAN(b, bus, kerneltest.MTUClassic)
	pol := filepath.Join(b.TempDir(), "policy.json")
	if err := os.WriteFile(pol, []byte(`{"buses": {"bdrbus": {"bridge": "always"}}, "default": {"buses": {"bdrbus": {}}}}`), 0o644); err != nil {
		b.Fatal(err)
	}
	const wait = 30 * time.Second
	d := kerneltest.StartDaemon(b, wait, "--containerd-address=")
	ns := kerneltest.NewNS(b)
	kerneltest.MustRun(b, kc, "attach", "--config", pol, "--netns", ns.Path(), "--bus", bus+":can0")
	b.Cleanup(func() { kerneltest.Run(b, kc, "detach", "--netns", ns.Path()) })
	host := kerneltest.Open(b, nil, bus)
	inside := kerneltest.Open(b, ns, "can0")

	var restore, outage time.Duration
	var lostFrames int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The sender: numbered frames, paced, until stop.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / restartRate)
			defer tick.Stop()
			for seq := uint32(1); ; seq++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// struct can_frame: id, length 4, the number. A failed send
				// shows as a lost frame.
				var frame [16]byte
				binary.NativeEndian.PutUint32(frame[:], 0x321)
				frame[4] = 4
				binary.BigEndian.PutUint32(frame[8:], seq)
				unix.Write(host.Fd(), frame[:])
			}
		}()
		got := map[uint32]bool{}
		var lastBefore, firstAfter, started time.Time
		killed := false
		after := 0
		for after < restartWarm {
			f, err := inside.Recv(wait)
			if errors.Is(err, kerneltest.ErrTimeout) {
				b.Fatalf("no frame carried for %v (restart %d, killed %v)", wait, i, killed)
			}
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			got[binary.BigEndian.Uint32(f.Data)] = true
			switch {
			case !killed && len(got) == restartWarm:
				lastBefore = now
				d.Kill9(b)
				killed = true
				started = time.Now()
				d = kerneltest.StartDaemon(b, wait, "--containerd-address=")
			case killed:
				if after == 0 {
					firstAfter = now
				}
				after++
			}
		}
		close(stop)
		wg.Wait()
		// Frames still on their way when the count was reached are not lost.
		var last uint32
		for seq := range got {
			last = max(last, seq)
		}
		lostFrames += int(last) - len(got)
		restore += firstAfter.Sub(started)
		outage += firstAfter.Sub(lastBefore)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(restore.Milliseconds())/n, "restore-ms")
	b.ReportMetric(float64(outage.Milliseconds())/n, "outage-ms")
	b.ReportMetric(float64(lostFrames)/n, "lost-frames")
	b.ReportMetric(0, "ns/op")
}
