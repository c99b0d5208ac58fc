//go:build kernel

package e2e

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// envCanwire names the library example's binary (examples/library, a
// module of its own), built by make kernel-tests.
const envCanwire = "KANTO_CAN_CANWIRE"

// The public packages used from another module do the manual recipe:
// frames cross both ways, and a bad bus is an error that leaves nothing.
func TestLibraryExample(t *testing.T) {
	kerneltest.Require(t)
	bin := os.Getenv(envCanwire)
	if bin == "" {
		t.Fatalf("%s is not set: make kernel-tests builds examples/library and passes it", envCanwire)
	}
	kerneltest.VCAN(t, "libbus0", kerneltest.MTUClassic)
	ns := kerneltest.NewNS(t)
	links, err := canlink.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()

	out, errOut, code := kerneltest.Run(t, bin, "-netns", ns.Path(), "-bus", "nosuch0", "-end", "vxlib0")
	if code == 0 || !strings.Contains(errOut, "nosuch0") {
		t.Fatalf("canwire on a missing bus: exit %d, %q %q", code, out, errOut)
	}
	if _, err := links.LinkByName("vxlib0"); !errors.Is(err, canlink.ErrNotFound) {
		t.Fatalf("a failed canwire left vxlib0: %v", err)
	}

	out, errOut, code = kerneltest.Run(t, bin, "-netns", ns.Path(), "-bus", "libbus0", "-end", "vxlib0")
	if code != 0 {
		t.Fatalf("canwire: exit %d: %s", code, errOut)
	}
	t.Log(strings.TrimSpace(out))
	t.Cleanup(func() {
		if l, err := links.LinkByName("vxlib0"); err == nil {
			links.Delete(l.Index)
		}
	})
	bus := kerneltest.Open(t, nil, "libbus0")
	inside := kerneltest.Open(t, ns, "can0")
	bus.Send(t, kerneltest.Frame{ID: 0x123, Data: []byte{1, 2}})
	inside.Expect(t, []kerneltest.Frame{{ID: 0x123, Data: []byte{1, 2}}}, wait)
	inside.Send(t, kerneltest.Frame{ID: 0x321, Data: []byte{3}})
	bus.Expect(t, []kerneltest.Frame{{ID: 0x321, Data: []byte{3}}}, wait)
}
