package nl

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Close wakes a Receive that waits for notifications (the daemon stops its
// link watch that way); it used to wait on for good. Netlink route
// sockets need no CAN: this runs on the host.
func TestWatcherCloseStopsReceive(t *testing.T) {
	w, err := Watch(unix.RTMGRP_LINK)
	if err != nil {
		t.Skipf("no netlink route socket here: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Receive()
		done <- err
	}()
	// Give Receive the chance to wait; if Close came first, Receive must
	// still return ErrClosed.
	time.Sleep(50 * time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Receive after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive still waits 5 s after Close")
	}
}
