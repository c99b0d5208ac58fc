package canlink_test

import (
	"testing"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
	"github.com/kanto-can/kanto-can/vxcan"
)

// One socket, one owner: the Conns of canlink, vxcan and cangw made over a
// caller's socket leave it open when closed (closing two of them used to
// close one descriptor twice), so the socket still answers; its owner
// closes it once.
func TestNewConnLeavesTheSocketToItsOwner(t *testing.T) {
	c := nltest.Dial(func(int, nl.Message) ([]nl.Message, error) { return nil, nil })
	links := canlink.NewConn(c)
	for _, conn := range []interface{ Close() error }{links, vxcan.NewConn(c), cangw.NewConn(c)} {
		if err := conn.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, err := links.Links(); err != nil {
		t.Fatalf("the socket after its borrowers closed: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("the owner's Close: %v", err)
	}
}
