package cangw_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/nl"
)

// Forward every classic frame from can0 to vcan0, unless the rule exists.
func Example() {
	src, err := net.InterfaceByName("can0")
	if err != nil {
		log.Fatal(err)
	}
	dst, err := net.InterfaceByName("vcan0")
	if err != nil {
		log.Fatal(err)
	}
	c, err := cangw.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	want := cangw.Rule{Src: src.Index, Dst: dst.Index, Flags: cangw.FlagEcho}
	rules, err := c.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rules {
		if r.Equal(want) {
			fmt.Printf("already there, %d frames forwarded\n", r.Handled)
			return
		}
	}
	// The kernel has no duplicate check: without the List above, a second
	// Add would forward every frame twice.
	if err := c.Add(want); err != nil {
		log.Fatal(err)
	}
}

// A CAN FD rule that forwards only id 0x123 and rewrites it to 0x321.
// Without FlagFD the rule would forward classic frames only.
func ExampleConn_Add() {
	c, err := cangw.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Add(cangw.Rule{
		Src:    3,
		Dst:    4,
		Flags:  cangw.FlagFD | cangw.FlagEcho,
		Filter: &cangw.Filter{ID: 0x123, Mask: 0x7FF},
		Mods: []cangw.Modification{
			{Op: cangw.ModSET, Targets: cangw.ModID, Frame: cangw.Frame{ID: 0x321}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Delete needs the exact rule; a rule from List always matches.
func ExampleConn_Delete() {
	c, err := cangw.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Delete(cangw.Rule{Src: 3, Dst: 4, Flags: cangw.FlagEcho})
	if errors.Is(err, cangw.ErrNoSuchRule) {
		fmt.Println("no such rule")
	} else if err != nil {
		log.Fatal(err)
	}
}

// Rules in another network namespace, e.g. a container's.
func ExampleDialNetNS() {
	ns, err := os.Open("/run/netns/ecu1")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	c, err := cangw.DialConfig(nl.Config{NetNS: int(ns.Fd())})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	rules, err := c.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rules {
		fmt.Println(r.Src, "->", r.Dst, r.Flags, r.Handled)
	}
}

// The bytes Add sends after the netlink header: struct rtcanmsg and the
// CGW_SRC_IF and CGW_DST_IF attributes (on a little-endian machine).
func ExampleRule_MarshalBinary() {
	b, err := cangw.Rule{Src: 2, Dst: 3, Flags: cangw.FlagEcho}.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("% x\n", b)
	// Output: 1d 01 01 00 08 00 09 00 02 00 00 00 08 00 0a 00 03 00 00 00
}

// The kernel would accept this rule and silently forget the UID, because
// it keeps a UID only for rules with a modification.
func ExampleRule_Validate() {
	err := cangw.Rule{Src: 2, Dst: 3, UID: 7}.Validate()
	fmt.Println(err != nil)
	fmt.Println(cangw.FlagEcho | cangw.FlagFD)
	// Output:
	// true
	// ECHO|FD
}
