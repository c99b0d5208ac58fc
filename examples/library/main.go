// Command canwire gives a network namespace a CAN interface
// wired to a host bus: a vxcan pair and two can-gw rules, made with the
// kanto-can module's public packages from a module of its own. It is the
// manual recipe (ip link add ... type vxcan, ip link set netns, cangw -A
// twice) in one program, without kanto-can's policy, records or daemon.
//
//	canwire -netns /proc/4242/ns/net -bus can0 [-inside can0] [-end vxcan0]
//
// It needs CAP_NET_ADMIN and the vxcan and can-gw modules; it undoes what
// it made when a step fails.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/vxcan"
)

func main() {
	netns := flag.String("netns", "", "the network namespace to give the interface: /proc/PID/ns/net or /run/netns/NAME")
	bus := flag.String("bus", "can0", "host CAN bus")
	inside := flag.String("inside", "can0", "the interface's name inside")
	end := flag.String("end", "vxcan0", "the host end's name")
	flag.Parse()
	if *netns == "" {
		log.Fatal("canwire: -netns is required")
	}
	if err := wire(*netns, *bus, *inside, *end); err != nil {
		// The kernel's own words, when it refused: its extended ack.
		var ke *nl.KernelError
		if errors.As(err, &ke) && ke.Message != "" {
			log.Printf("canwire: the kernel said: %s", ke.Message)
		}
		log.Fatalf("canwire: %v", err)
	}
}

func wire(netns, bus, inside, end string) (err error) {
	ns, err := os.Open(netns)
	if err != nil {
		return err
	}
	defer ns.Close()

	// One route netlink socket serves the three packages.
	conn, err := nl.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	links, pairs, gw := canlink.NewConn(conn), vxcan.NewConn(conn), cangw.NewConn(conn)

	host, err := links.LinkByName(bus)
	if errors.Is(err, canlink.ErrNotFound) {
		return fmt.Errorf("bus %s: no such interface", bus)
	}
	if err != nil {
		return err
	}
	if !host.IsCAN() {
		return fmt.Errorf("bus %s is not a CAN interface (%s)", bus, host.Kind)
	}
	mtu, flags := canlink.MTUClassic, cangw.FlagEcho
	if host.FD() {
		mtu, flags = canlink.MTUFD, flags|cangw.FlagFD
	}
	near, err := pairs.Create(vxcan.Pair{Name: end, PeerName: inside, PeerNS: ns, MTU: mtu})
	if err != nil {
		return err
	}
	// Deleting the pair also deletes every rule that names it.
	defer func() {
		if err != nil {
			links.Delete(near.Index)
		}
	}()
	for _, r := range []cangw.Rule{
		{Src: host.Index, Dst: near.Index, Flags: flags},
		// vxcan keeps the sender's ifindex, an index of the other
		// namespace: IIF_TX_OK, or a frame whose index equals the bus's
		// is dropped.
		{Src: near.Index, Dst: host.Index, Flags: flags | cangw.FlagIIFTXOK},
	} {
		if err := gw.Add(r); err != nil {
			return err
		}
	}
	fmt.Printf("%s in %s <-> %s (host end %s)\n", inside, netns, bus, end)
	return nil
}
