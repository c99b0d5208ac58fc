package cangw_test

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
)

// Errors the kernel answered wrap an *nl.KernelError: its errno and the
// kernel's own message (extended ack), when it gave one. Here the "kernel"
// is a function (package nl/nltest), as in a unit test of code built on
// cangw.
func ExampleConn_Add_kernelError() {
	kernel := func(_ int, req nl.Message) ([]nl.Message, error) {
		return nil, &nl.KernelError{Errno: unix.ENODEV, Message: "no such CAN interface"}
	}
	c := cangw.NewConn(nltest.Dial(kernel))
	defer c.Close()

	err := c.Add(cangw.Rule{Src: 4, Dst: 5, Flags: cangw.FlagEcho})
	var ke *nl.KernelError
	if errors.As(err, &ke) {
		fmt.Printf("errno %d (%v), the kernel said %q\n", ke.Errno, errors.Is(err, unix.ENODEV), ke.Message)
	}
	fmt.Println(err)
	// Output:
	// errno 19 (true), the kernel said "no such CAN interface"
	// cangw: add: interface index 4 or 5 does not exist in this network namespace or is not a CAN interface: no such device (no such CAN interface)
}

// Rules listed from a scripted kernel: the rules the function answers
// are what List returns.
func ExampleConn_List_scripted() {
	rule := cangw.Rule{Src: 2, Dst: 3, Flags: cangw.FlagEcho}
	kernel := func(_ int, req nl.Message) ([]nl.Message, error) {
		b, err := rule.MarshalBinary()
		return []nl.Message{{Header: nl.Header{Type: unix.RTM_NEWROUTE}, Data: b}}, err
	}
	c := cangw.NewConn(nltest.Dial(kernel))
	defer c.Close()
	rules, err := c.List()
	fmt.Println(len(rules), err, rules[0].Src, rules[0].Dst)
	// Output: 1 <nil> 2 3
}
