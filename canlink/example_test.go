package canlink_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/kanto-can/kanto-can/canlink"
)

// Check that an interface is a CAN bus, whether it carries CAN FD and, for
// a controller, its state and bitrate.
func ExampleConn_LinkByName() {
	c, err := canlink.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	bus, err := c.LinkByName("can0")
	if errors.Is(err, canlink.ErrNotFound) {
		log.Fatal("no can0 here")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: CAN %v, FD %v, kind %s\n", bus.Name, bus.IsCAN(), bus.FD(), bus.Kind)
	if bus.CAN != nil {
		fmt.Printf("controller %s at %d bit/s\n", bus.CAN.State, bus.CAN.Bitrate)
	}
}
