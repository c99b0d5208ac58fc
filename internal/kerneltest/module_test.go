package kerneltest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleKnown(t *testing.T) {
	dir := t.TempDir()
	dep := "kernel/net/can/can-gw.ko.xz: kernel/net/can/can.ko.xz\n" +
		"kernel/drivers/net/can/sja1000/kvaser_pci.ko: kernel/drivers/net/can/sja1000/sja1000.ko kernel/drivers/net/can/dev/can-dev.ko\n" +
		"kernel/net/sched/act_police.ko.zst:\n"
	builtin := "kernel/drivers/virtio/virtio_pci.ko\nkernel/net/can/can.ko\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"can_gw", true},        // compressed, dash in the file name
		{"kvaser_pci", true},    // plain .ko
		{"act_police", true},    // zstd
		{"sja1000", false},      // only a dependency, not a line of its own
		{"can", false},          // built in, but no modules.builtin yet
		{"ctucanfd_pci", false}, // absent
		{"can_gw_extra", false}, // a longer name is another module
	} {
		if got, err := moduleKnown(dir, tc.name); err != nil || got != tc.want {
			t.Errorf("moduleKnown(%s) without modules.builtin = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"can": true, "virtio_pci": true, "can_gw": true, "vcan": false} {
		if got, err := moduleKnown(dir, name); err != nil || got != want {
			t.Errorf("moduleKnown(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := moduleKnown(filepath.Join(dir, "none"), "can"); err == nil {
		t.Error("moduleKnown without modules.dep: no error")
	}
}

func TestListsModuleLongLines(t *testing.T) {
	// modules.dep lines can be long (many dependencies).
	line := "kernel/x/long.ko:" + strings.Repeat(" kernel/y/dep.ko", 10000) + "\n"
	if !listsModule(strings.NewReader(line), "long", true) {
		t.Error("a long modules.dep line was not read")
	}
}
