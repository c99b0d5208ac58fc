//go:build kernel

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

// statusAll returns `status -o json`'s buses, by bus.
func statusAll(t *testing.T) map[string]attach.HostBusStatus {
	t.Helper()
	raw := mustKC(t, "status", "-o", "json")
	schematest.Validate(t, "docs/cli/status.schema.json", []byte(raw))
	var status struct {
		Buses []attach.HostBusStatus `json:"buses"`
	}
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		t.Fatal(err)
	}
	list := status.Buses
	out := map[string]attach.HostBusStatus{}
	for _, b := range list {
		if _, dup := out[b.Name]; dup {
			t.Fatalf("status lists %s twice: %+v", b.Name, list)
		}
		out[b.Name] = b
	}
	return out
}

// lsRaw returns `ls -o json` as plain JSON objects, to check the names
// of its fields.
func lsRaw(t *testing.T) []map[string]any {
	t.Helper()
	out := mustKC(t, "ls", "-o", "json")
	schematest.Validate(t, "docs/cli/ls.schema.json", []byte(out))
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

// ls and status show the emulated Kvaser's state and bitrate, and no
// state for a virtual bus; a controller set down is "stopped".
func TestLsAndStatusShowTheBusState(t *testing.T) {
	kerneltest.Require(t)
	bus, _ := kerneltest.Kvaser(t)
	kerneltest.VCAN(t, "stbus", 72)
	for _, spec := range []string{bus, bus + ",dir=rx", "stbus:can1"} {
		ns := kerneltest.NewNS(t)
		mustKC(t, "attach", "--netns", ns.Path(), "--bus", spec)
		t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
	}
	busIndex, _ := linkIndex(t, nil, bus)
	vcanIndex, _ := linkIndex(t, nil, "stbus")

	n := 0
	for _, a := range lsRaw(t) {
		switch a["bus"] {
		case bus:
			n++
			if a["bus_state"] != "error-active" || a["bus_bitrate"] != float64(kerneltest.KvaserBitrate) || a["bus_fd"] != false {
				t.Errorf("ls: %s: %v", bus, a)
			}
			if _, has := a["bus_data_bitrate"]; has {
				t.Errorf("ls: %s: a data bitrate on a classic controller: %v", bus, a)
			}
		case "stbus":
			n++
			if a["bus_fd"] != true {
				t.Errorf("ls: stbus: %v", a)
			}
			for _, k := range []string{"bus_state", "bus_bitrate", "bus_data_bitrate"} {
				if _, has := a[k]; has {
					t.Errorf("ls: vcan stbus has %s: %v", k, a)
				}
			}
		}
		// The fields that were there before stay; who and dir as the table.
		for _, k := range []string{"who", "dir", "target", "label", "bus", "bus_index", "inside", "host_end", "host_end_index", "fd", "rules"} {
			if _, has := a[k]; !has {
				t.Errorf("ls: no %s in %v", k, a)
			}
		}
	}
	if n != 3 {
		t.Fatalf("ls: %d attachments on %s and stbus, want 3", n, bus)
	}

	st := statusAll(t)
	// Each bus names what is attached to it: here namespaces by path.
	for name, n := range map[string]int{bus: 2, "stbus": 1} {
		b := st[name]
		if len(b.Who) != n || !strings.HasPrefix(b.Who[0], "netns /run/netns/") {
			t.Errorf("status %s: who %q, want %d namespaces", name, b.Who, n)
		}
		b.Who = nil
		// The counters move with traffic: present is what is checked here
		// (top's tests check their values); error counters for the
		// controller only.
		if b.Counters == nil || (b.Errors != nil) != (name == bus) {
			t.Errorf("status %s: counters %+v, errors %+v", name, b.Counters, b.Errors)
		}
		b.Counters, b.Errors = nil, nil
		st[name] = b
	}
	want := attach.HostBusStatus{Name: bus, Index: busIndex, Kind: "can", Up: true, State: "error-active", Bitrate: kerneltest.KvaserBitrate,
		MTU: canlink.MTUClassic, Attachments: 2}
	if !reflect.DeepEqual(st[bus], want) {
		t.Errorf("status %s: %+v, want %+v", bus, st[bus], want)
	}
	wantV := attach.HostBusStatus{Name: "stbus", Index: vcanIndex, Kind: "vcan", Up: true, FD: true, MTU: canlink.MTUFD, Attachments: 1}
	if !reflect.DeepEqual(st["stbus"], wantV) {
		t.Errorf("status stbus: %+v, want %+v", st["stbus"], wantV)
	}
	table := mustKC(t, "status")
	if !strings.Contains(table, "error-active") || !strings.Contains(table, fmt.Sprint(kerneltest.KvaserBitrate)) {
		t.Errorf("status table:\n%s", table)
	}

	// The daemon's metrics say the same.
	const addr = "127.0.0.1:9734"
	startDaemon(t, "--metrics-address="+addr)
	m := kerneltest.Scrape(t, "http://"+addr+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kanto_can_bus_state", map[string]string{"bus": bus, "state": "error-active"}, 1},
		{"kanto_can_bus_state", map[string]string{"bus": bus, "state": "bus-off"}, 0},
		{"kanto_can_bus_bitrate_bits_per_second", map[string]string{"bus": bus, "phase": "nominal"}, kerneltest.KvaserBitrate},
		{"kanto_can_bus_up", map[string]string{"bus": bus}, 1},
		{"kanto_can_bus_fd", map[string]string{"bus": bus}, 0},
		{"kanto_can_bus_attachments", map[string]string{"bus": bus}, 2},
		{"kanto_can_bus_fd", map[string]string{"bus": "stbus"}, 1},
		{"kanto_can_bus_attachments", map[string]string{"bus": "stbus"}, 1},
	} {
		if got, ok := m.Value(c.name, c.labels); !ok || got != c.want {
			t.Errorf("metrics: %s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := m.Value("kanto_can_bus_state", map[string]string{"bus": "stbus", "state": "error-active"}); ok {
		t.Error("metrics: a vcan has a controller state")
	}

	// Down: stopped, the bitrate stays.
	kerneltest.MustRun(t, "ip", "link", "set", bus, "down")
	want.Up, want.State = false, "stopped"
	if got := statusAll(t)[bus]; got.Up != want.Up || got.State != want.State || got.Bitrate != want.Bitrate {
		t.Errorf("status %s when down: %+v, want %+v", bus, got, want)
	}
	if table := mustKC(t, "ls"); !strings.Contains(table, "stopped") {
		t.Errorf("ls table when %s is down does not say stopped:\n%s", bus, table)
	}
	kerneltest.MustRun(t, "ip", "link", "set", bus, "up")
	if got := statusAll(t)[bus]; got.State != "error-active" || !got.Up {
		t.Errorf("status %s up again: %+v", bus, got)
	}
}

// writeSysfs writes one value to a sysfs file.
func writeSysfs(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value), 0o200); err != nil {
		t.Fatalf("write %s to %s: %v", value, path, err)
	}
}

// pciNetName returns the name of the network interface of a PCI device,
// "" when it has none (no driver bound).
func pciNetName(t *testing.T, addr string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("/sys/bus/pci/devices", addr, "net", "*"))
	if err != nil {
		t.Fatal(err)
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return filepath.Base(names[0])
	}
	t.Fatalf("PCI device %s has %d interfaces: %v", addr, len(names), names)
	return ""
}

// Unbind and bind again the PCI device of the emulated Kvaser behind the
// bus while three containers are attached, as a driver reload or a
// replugged adapter would: the controller comes back down, without
// bitrate, with a new ifindex. The test configures it as the system's
// network configuration would (bitrate, up); the daemon has put the
// containers' rules back, each once, and frames flow both ways again.
func TestDaemonRestoresRoutesWhenTheControllerIsRebound(t *testing.T) {
	kerneltest.Require(t)
	bus, ecu := kerneltest.Kvaser(t)
	dev, err := os.Readlink(filepath.Join("/sys/class/net", bus, "device"))
	if err != nil {
		t.Fatalf("%s has no device: %v", bus, err)
	}
	addr := filepath.Base(dev)
	driver, err := os.Readlink(filepath.Join("/sys/class/net", bus, "device", "driver"))
	if err != nil || filepath.Base(driver) != "kvaser_pci" {
		t.Fatalf("%s (PCI %s): driver %q, %v; want kvaser_pci", bus, addr, driver, err)
	}
	drv := "/sys/bus/pci/drivers/kvaser_pci"
	// Whatever happens, leave the controller bound, named bus, with its
	// bitrate, for the tests after this one (Kvaser's cleanup sets it down
	// after this has run).
	t.Cleanup(func() {
		if pciNetName(t, addr) == "" {
			writeSysfs(t, filepath.Join(drv, "bind"), addr)
		}
		if name := pciNetName(t, addr); name != bus && name != "" {
			kerneltest.MustRun(t, "ip", "link", "set", name, "down")
			kerneltest.MustRun(t, "ip", "link", "set", name, "name", bus)
		}
		c, err := canlink.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if l, err := c.LinkByName(bus); err == nil && (l.CAN == nil || l.CAN.Bitrate == 0) {
			kerneltest.MustRun(t, "ip", "link", "set", bus, "type", "can", "bitrate", fmt.Sprint(kerneltest.KvaserBitrate))
			kerneltest.MustRun(t, "ip", "link", "set", bus, "up")
		}
	})

	d := startDaemon(t)
	var inside []*kerneltest.Socket
	for i := 0; i < 3; i++ {
		ns := kerneltest.NewNS(t)
		mustKC(t, "attach", "--netns", ns.Path(), "--bus", bus)
		t.Cleanup(func() { kc(t, "detach", "--netns", ns.Path()) })
		inside = append(inside, kerneltest.Open(t, ns, bus))
	}
	ecuSock := kerneltest.Open(t, nil, ecu)
	oldIndex, _ := linkIndex(t, nil, bus)
	_, before := leftover.Ours(t)
	if len(before) != 6 {
		t.Fatalf("%d rules before, want 6 (rx and tx for each of 3)", len(before))
	}
	// The routes work before.
	ecuSock.Send(t, frame(0x110, 1))
	for _, s := range inside {
		s.Expect(t, []kerneltest.Frame{frame(0x110, 1)}, wait)
	}

	// The write returns once the driver has let go: the interface is
	// unregistered, and the gateway forgot every rule naming it.
	writeSysfs(t, filepath.Join(drv, "unbind"), addr)
	if _, err := linkConn(t, nil).LinkByName(bus); !errors.Is(err, canlink.ErrNotFound) {
		t.Fatalf("%s after unbind: %v", bus, err)
	}
	if _, rules := leftover.Ours(t); len(rules) != 0 {
		t.Fatalf("%d rules survived the controller", len(rules))
	}
	if st := statusAll(t)[bus]; st.Index != 0 || st.Attachments != 3 {
		t.Errorf("status while %s is gone: %+v", bus, st)
	}

	writeSysfs(t, filepath.Join(drv, "bind"), addr)
	name := pciNetName(t, addr)
	if name == "" {
		t.Fatalf("PCI %s has no interface after bind", addr)
	}
	if name != bus {
		// The kernel named it anew (can%d): rename it, as udev rules would.
		t.Logf("after bind, %s came back as %s", bus, name)
		kerneltest.MustRun(t, "ip", "link", "set", name, "name", bus)
	}
	fresh, err := linkConn(t, nil).LinkByName(bus)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Index == oldIndex || fresh.Up || fresh.CAN == nil || fresh.CAN.Bitrate != 0 || fresh.CAN.State != canlink.CANStateStopped {
		t.Fatalf("%s after bind: %+v %+v, want down, stopped, no bitrate, an ifindex other than %d", bus, fresh, fresh.CAN, oldIndex)
	}
	t.Logf("PCI %s re-bound: %s ifindex %d -> %d", addr, bus, oldIndex, fresh.Index)
	if st := statusAll(t)[bus]; st.Index != fresh.Index || st.Up || st.State != "stopped" || st.Bitrate != 0 || st.Attachments != 3 {
		t.Errorf("status of the fresh %s: %+v", bus, st)
	}

	// The system's network configuration: bitrate, up.
	kerneltest.MustRun(t, "ip", "link", "set", bus, "type", "can", "bitrate", fmt.Sprint(kerneltest.KvaserBitrate))
	kerneltest.MustRun(t, "ip", "link", "set", bus, "up")
	d.AwaitLog(t, "msg=reconciled", "restored=kcan")

	// Each rule once: every container gets the ECU's frame once before the
	// marker, and the ECU gets each container's frame once before its marker.
	onOneCPU(t, func() {
		ecuSock.Send(t, frame(0x120, 2))
		ecuSock.Send(t, frame(0x121, 0xFF))
	})
	for _, s := range inside {
		s.ExpectOnlyUntil(t, []kerneltest.Frame{frame(0x120, 2)}, frame(0x121, 0xFF), wait)
	}
	for i, s := range inside {
		id := uint32(0x130 + 2*i)
		onOneCPU(t, func() {
			s.Send(t, frame(id, byte(i)))
			s.Send(t, frame(id+1, 0xFF))
		})
		ecuSock.ExpectOnlyUntil(t, []kerneltest.Frame{frame(id, byte(i))}, frame(id+1, 0xFF), wait)
	}

	_, after := leftover.Ours(t)
	if len(after) != len(before) {
		t.Fatalf("%d rules, want %d", len(after), len(before))
	}
	for i := range after {
		for j := i + 1; j < len(after); j++ {
			if after[i].Equal(after[j]) {
				t.Fatalf("duplicate rule %+v", after[i])
			}
		}
		if after[i].Src != fresh.Index && after[i].Dst != fresh.Index {
			t.Errorf("rule %+v does not name the new %s (%d)", after[i], bus, fresh.Index)
		}
	}
	n := 0
	for _, a := range lsAll(t) {
		if a.HostBus != bus {
			continue
		}
		n++
		if a.HostBusIndex != fresh.Index || a.HostBusState != "error-active" || a.HostBusBitrate != kerneltest.KvaserBitrate || len(a.Rules) != 2 {
			t.Errorf("ls: %+v", a)
		}
	}
	if n != 3 {
		t.Errorf("ls: %d attachments on %s, want 3", n, bus)
	}
	if st := statusAll(t)[bus]; st.Index != fresh.Index || !st.Up || st.State != "error-active" || st.Bitrate != kerneltest.KvaserBitrate || st.Attachments != 3 {
		t.Errorf("status: %+v", st)
	}
}
