package nl_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// noop is a request the kernel never answers (NLMSG_NOOP without
// NLM_F_ACK), so an Execute of it waits until Close or a deadline.
var noop = nl.Message{Header: nl.Header{Type: unix.NLMSG_NOOP}}

func TestPolledCloseWakesExecute(t *testing.T) {
	c, err := nl.DialConfig(nl.Config{Poll: true})
	if err != nil {
		t.Skipf("no route netlink socket here: %v", err)
	}
	done := make(chan error)
	go func() {
		_, err := c.Execute(noop)
		done <- err
	}()
	// Close must wake the Execute whether it waits already or not yet.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, nl.ErrClosed) {
		t.Fatalf("Execute after Close = %v, want ErrClosed", err)
	}
}

func TestPolledDeadline(t *testing.T) {
	c, err := nl.DialConfig(nl.Config{Poll: true})
	if err != nil {
		t.Skipf("no route netlink socket here: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute(noop); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Execute past its deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	// A real request still works once the deadline is lifted.
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute(nl.Message{Header: nl.Header{Type: unix.RTM_GETLINK, Flags: nl.Dump}, Data: make([]byte, unix.SizeofIfInfomsg)}); err != nil {
		t.Fatalf("link dump: %v", err)
	}
}

func TestBlockingHasNoDeadline(t *testing.T) {
	c, err := nl.Dial()
	if err != nil {
		t.Skipf("no route netlink socket here: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now()); err == nil {
		t.Fatal("SetDeadline on a blocking socket: no error")
	}
}

func TestNetNS(t *testing.T) {
	for _, poll := range []bool{false, true} {
		c, err := nl.DialConfig(nl.Config{Poll: poll})
		if err != nil {
			t.Skipf("no route netlink socket here: %v", err)
		}
		ns, err := c.NetNS()
		c.Close()
		if err != nil {
			t.Skipf("SIOCGSKNS: %v", err)
		}
		var got, want unix.Stat_t
		if err := unix.Fstat(ns, &got); err != nil {
			t.Fatal(err)
		}
		unix.Close(ns)
		if err := unix.Stat("/proc/thread-self/ns/net", &want); err != nil {
			t.Fatal(err)
		}
		if got.Ino != want.Ino {
			t.Errorf("poll=%v: NetNS is inode %d, own namespace %d", poll, got.Ino, want.Ino)
		}
	}
}
