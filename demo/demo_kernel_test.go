//go:build kernel

package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

const (
	ns       = "kanto-cm"
	imageRef = "docker.io/kanto-can/demo:1"
	wait     = 60 * time.Second
)

func say(format string, a ...any) { fmt.Printf("\n\033[1m== "+format+"\033[0m\n", a...) }

func show(t *testing.T, name string, args ...string) {
	fmt.Printf("$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// manifest is the part of a Kanto container manifest the demo uses.
type manifest struct {
	Name   string `json:"container_name"`
	Config struct {
		Env []string `json:"env"`
	} `json:"config"`
	Hooks []struct {
		Path string   `json:"path"`
		Args []string `json:"args"`
		Type int      `json:"type"` // 0 prestart, 2 poststop
	} `json:"hooks"`
}

func readManifest(t *testing.T, name string) manifest {
	b, err := os.ReadFile(filepath.Join("..", "examples", "kanto", name))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// install copies kanto-can to path, as a package would (the guest's root is
// a writable overlay).
func install(t *testing.T, path string) {
	src, err := os.Open(kerneltest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	os.MkdirAll(filepath.Dir(path), 0o755)
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
}

func TestDemo(t *testing.T) {
	kerneltest.Require(t)
	say("Emulated hardware: can0 (the host's bus) and can1 (an ECU) on one emulated CAN bus")
	bus, ecuIf := kerneltest.Kvaser(t)
	show(t, "/usr/sbin/ip", "-brief", "link", "show", bus)

	m := readManifest(t, "can-ubuntu-hooks.json")
	hookPath := m.Hooks[0].Path
	install(t, hookPath)
	wrapDir := t.TempDir()
	os.Symlink(hookPath, filepath.Join(wrapDir, "runc"))
	say("containerd and runc (Debian's); kanto-can at %s, and linked as runc ahead of the real one", hookPath)
	c := ctrtest.StartContainerd(t, ctrtest.WithPath(wrapDir))
	ctrtest.BuildImage(t, c, ns, imageRef, map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)})

	say("Container %q from examples/kanto/can-ubuntu-hooks.json: env %v, hooks from the manifest", m.Name, m.Config.Env)
	var hooks ctrtest.Hooks
	for _, h := range m.Hooks {
		switch h.Type {
		case 0:
			hooks.Prestart = append(hooks.Prestart, ctrtest.Hook{Path: h.Path, Args: h.Args})
		case 2:
			hooks.Poststop = append(hooks.Poststop, ctrtest.Hook{Path: h.Path, Args: h.Args})
		}
	}
	fmt.Println("(the demo image has busybox and canapp instead of ubuntu: its entrypoint checks for can0 first,\n exits if it is missing, then echoes every frame with id+1)")
	app := c.Run(t, ns, m.Name, ctrtest.Spec{Image: imageRef, Args: []string{"/bin/canapp", "serve", "can0"}, Env: m.Config.Env, Hooks: hooks})
	fmt.Print("container output: ", app.WaitOutput(t, "ready", wait))

	say("ECU -> container -> ECU: the ECU sends 123#DEADBEEF on can1, the container answers 124#DEADBEEF")
	ecu := kerneltest.Open(t, nil, ecuIf)
	dump := kerneltest.Candump(t, nil, ecuIf)
	ecu.Send(t, kerneltest.Frame{ID: 0x123, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}})
	ecu.Expect(t, []kerneltest.Frame{{ID: 0x124, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}}}, wait)
	fmt.Printf("candump on the ECU's can1: %s\n", strings.Join(dump.WaitFor(t, 2, wait), "  "))

	e := readManifest(t, "can-ubuntu-env-only.json")
	say("Container %q asks only through its environment (%v); the runc wrapper adds the hooks", e.Name, e.Config.Env)
	envApp := c.Run(t, ns, e.Name, ctrtest.Spec{Image: imageRef, Args: []string{"/bin/canapp", "serve", "can0"}, Env: e.Config.Env})
	fmt.Print("container output: ", envApp.WaitOutput(t, "ready", wait))
	ecu.Send(t, kerneltest.Frame{ID: 0x200, Data: []byte{1}})
	ecu.Expect(t, []kerneltest.Frame{{ID: 0x201, Data: []byte{1}}, {ID: 0x201, Data: []byte{1}}}, wait)
	fmt.Println("the ECU's 200#01 reached both containers; both answered 201#01")

	say("kanto-can ls: attachments, gateway rules, counters")
	show(t, hookPath, "ls")

	say("Stopping both (runc delete runs the poststop hooks): nothing of theirs is left")
	app.Stop(t)
	envApp.Stop(t)
	show(t, hookPath, "ls")
	fmt.Println("\ndemo: OK")
}
