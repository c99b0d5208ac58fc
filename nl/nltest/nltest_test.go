package nltest_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
)

func TestAnswers(t *testing.T) {
	var seen []nl.Message
	c := nltest.Dial(func(ns int, req nl.Message) ([]nl.Message, error) {
		seen = append(seen, req)
		switch req.Header.Type {
		case unix.RTM_GETLINK:
			return []nl.Message{{Header: nl.Header{Type: unix.RTM_NEWLINK}, Data: []byte{1}}, {Header: nl.Header{Type: unix.RTM_NEWLINK}, Data: []byte{2}}}, nil
		case unix.RTM_DELLINK:
			return nil, &nl.KernelError{Errno: unix.ENODEV, Message: "no such device here"}
		}
		return nil, nil
	})
	defer c.Close()

	replies, err := c.Execute(nl.Message{Header: nl.Header{Type: unix.RTM_GETLINK, Flags: nl.Dump}})
	if err != nil || len(replies) != 2 || replies[1].Data[0] != 2 {
		t.Fatalf("dump: %+v, %v", replies, err)
	}
	if _, err := c.Execute(nl.Message{Header: nl.Header{Type: unix.RTM_NEWLINK, Flags: nl.Acknowledge}}); err != nil {
		t.Fatalf("acknowledged request: %v", err)
	}
	_, err = c.Execute(nl.Message{Header: nl.Header{Type: unix.RTM_DELLINK, Flags: nl.Acknowledge}})
	var ke *nl.KernelError
	if !errors.As(err, &ke) || ke.Message != "no such device here" || !errors.Is(err, unix.ENODEV) {
		t.Fatalf("error answer = %v, want ENODEV with the extended ack", err)
	}
	if len(seen) != 3 || seen[2].Header.Sequence != 3 || seen[0].Header.Flags&nl.Request == 0 {
		t.Fatalf("requests seen: %+v", seen)
	}
	_, err = c.Execute(nl.Message{Header: nl.Header{Type: unix.RTM_NEWLINK}})
	if !errors.Is(err, nltest.ErrNoAnswer) {
		t.Fatalf("unanswered request = %v, want ErrNoAnswer", err)
	}
}

// The kernel marks a dump interrupted when its table changed meanwhile:
// Execute reads it again, and gives up after a few tries.
func TestInterruptedDump(t *testing.T) {
	for _, tc := range []struct {
		interrupted, calls int
		wantErr            bool
	}{{0, 1, false}, {2, 3, false}, {4, 5, false}, {100, 5, true}} {
		calls := 0
		c := nltest.Dial(func(_ int, req nl.Message) ([]nl.Message, error) {
			calls++
			m := nl.Message{Header: nl.Header{Type: unix.RTM_NEWROUTE}, Data: []byte{byte(calls)}}
			if calls <= tc.interrupted {
				m.Header.Flags |= nl.DumpInterrupted
			}
			return []nl.Message{m}, nil
		})
		replies, err := c.Execute(nl.Message{Header: nl.Header{Type: unix.RTM_GETROUTE, Flags: nl.Dump}})
		if calls != tc.calls || errors.Is(err, nl.ErrDumpInterrupted) != tc.wantErr {
			t.Errorf("%d interruptions: %d dumps, err %v", tc.interrupted, calls, err)
		}
		if !tc.wantErr && (len(replies) != 1 || int(replies[0].Data[0]) != calls) {
			t.Errorf("%d interruptions: replies %+v, want the last dump's", tc.interrupted, replies)
		}
	}
}

func TestNamespaces(t *testing.T) {
	var asked []int
	c := nltest.Dial(func(ns int, req nl.Message) ([]nl.Message, error) {
		asked = append(asked, ns)
		return nil, nil
	})
	inner, err := c.DialNetNS(7)
	if err != nil {
		t.Fatal(err)
	}
	ack := nl.Message{Header: nl.Header{Type: unix.RTM_NEWLINK, Flags: nl.Acknowledge}}
	if _, err := inner.Execute(ack); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute(ack); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[0] != 7 || asked[1] != 0 {
		t.Fatalf("namespaces asked from: %v, want [7 0]", asked)
	}
	if _, err := inner.Execute(ack); err != nil {
		t.Fatal(err)
	}
	inner.Close()
	if _, err := inner.Execute(ack); !errors.Is(err, nl.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
