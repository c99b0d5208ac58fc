package bridge

import (
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/request"
)

// The transmit limit lets the burst through at once, then the rate.
func TestBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBucket(request.Rate{FramesPerSecond: 10, Burst: 5}, t0)
	passed := 0
	for i := 0; i < 20; i++ {
		if b.take(t0) {
			passed++
		}
	}
	if passed != 5 {
		t.Errorf("at once: %d passed, want the burst, 5", passed)
	}
	if b.take(t0.Add(50 * time.Millisecond)) {
		t.Error("half a token's time later, a frame passed")
	}
	if !b.take(t0.Add(100 * time.Millisecond)) {
		t.Error("a token's time later, the frame was dropped")
	}
	// A long pause refills to the burst, not beyond.
	passed = 0
	for i := 0; i < 20; i++ {
		if b.take(t0.Add(time.Hour)) {
			passed++
		}
	}
	if passed != 5 {
		t.Errorf("after an hour: %d passed at once, want 5", passed)
	}
}
