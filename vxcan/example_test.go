package vxcan_test

import (
	"fmt"
	"log"
	"os"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/vxcan"
)

// Give the process 4242 (say, a container's) an interface can0, wired to
// vxcan-app on the host. Needs CAP_NET_ADMIN and the vxcan module.
func ExampleConn_Create() {
	ns, err := os.Open("/proc/4242/ns/net")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	c, err := vxcan.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	end, err := c.Create(vxcan.Pair{Name: "vxcan-app", PeerName: "can0", PeerNS: ns, MTU: canlink.MTUFD})
	if err != nil {
		log.Fatal(err)
	}
	// Both ends carry frames from here on.
	fmt.Printf("host end %s (index %d) is %s\n", end.Name, end.Index, end.OperState)
}
