//go:build kernel

package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

const wait = 60 * time.Second

func say(format string, a ...any) { fmt.Printf("\n\033[1m== "+format+"\033[0m\n", a...) }

// show runs a command as the user would type it (name is shown by its
// base name) and prints what it printed.
func show(t *testing.T, name string, args ...string) string {
	t.Helper()
	fmt.Printf("$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	out, err := exec.Command(name, args...).CombinedOutput()
	fmt.Print(string(out))
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(name), err)
	}
	return string(out)
}

// manifest is the part of a Kanto container manifest the demo reads.
type manifest struct {
	Name  string `json:"container_name"`
	Image struct {
		Name string `json:"name"`
	} `json:"image"`
	Config struct {
		Env []string `json:"env"`
	} `json:"config"`
	Hooks []struct {
		Path string `json:"path"`
	} `json:"hooks"`
}

func readManifest(t *testing.T, path string) manifest {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// install puts kanto-can at path, as a package would (the guest's root is
// a writable overlay).
func install(t *testing.T, path string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(kerneltest.Binary(t), path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

func TestDemo(t *testing.T) {
	kerneltest.Require(t)
	say("Emulated hardware: can0 (the host's bus) and can1 (an ECU) on one emulated CAN bus")
	bus, ecuIf := kerneltest.Kvaser(t)
	show(t, "/usr/sbin/ip", "-brief", "link", "show", bus)

	t.Chdir("..") // the repository: paths as a user types them there
	hooksFile := filepath.Join("examples", "kanto", "can-ubuntu-hooks.json")
	envFile := filepath.Join("examples", "kanto", "can-ubuntu-env-only.json")
	withHooks, envOnly := readManifest(t, hooksFile), readManifest(t, envFile)
	kc := withHooks.Hooks[0].Path
	install(t, kc)
	wrapDir := t.TempDir()
	if err := os.Symlink(kc, filepath.Join(wrapDir, "runc")); err != nil {
		t.Fatal(err)
	}
	say("Eclipse Kanto container-management on containerd and runc (Debian's); kanto-can at %s, and linked as runc ahead of the real one", kc)
	// The guest has no network: the examples' image is a stand-in with
	// busybox (sh, test, echo, sleep: all the examples' command uses) and
	// canapp, imported under the examples' image name.
	files := map[string]string{"/bin/busybox": "/bin/busybox", "/bin/canapp": ctrtest.CanappPath(t)}
	k := kantotest.Start(t, kantotest.WithPath(wrapDir), kantotest.WithImage(withHooks.Image.Name, files))
	_, cm := kantotest.Binaries(t)
	fmt.Printf("(%s is a stand-in image here: busybox and canapp)\n", withHooks.Image.Name)

	say("%s: kanto-can's hooks in the manifest, %v", hooksFile, withHooks.Config.Env)
	show(t, cm, "create", "-f", hooksFile)
	show(t, cm, "start", "-n", withHooks.Name)
	app := k.Get(t, withHooks.Name)
	fmt.Print("container output: ", k.WaitLog(t, app.ID, "can0 is here", 1, wait))

	say("ECU <-> container: the ECU sends 123#DEADBEEF on can1; an app on the container's can0 receives it and answers 124#DEADBEEF")
	fmt.Println("(the example's entrypoint only sleeps: the demo opens the app's socket in the container's network namespace)")
	ecu := kerneltest.Open(t, nil, ecuIf)
	dump := kerneltest.Candump(t, nil, ecuIf)
	inside := kerneltest.Open(t, kerneltest.ProcessNS(app.State.Pid), "can0")
	req := kerneltest.Frame{ID: 0x123, Data: []byte{0xDE, 0xAD, 0xBE, 0xEF}}
	ecu.Send(t, req)
	inside.Expect(t, []kerneltest.Frame{req}, wait)
	inside.Send(t, kerneltest.Frame{ID: 0x124, Data: req.Data})
	ecu.Expect(t, []kerneltest.Frame{{ID: 0x124, Data: req.Data}}, wait)
	fmt.Printf("candump on the ECU's can1: %s\n", strings.Join(dump.WaitFor(t, 2, wait), "  "))

	say("%s: only %v in its environment; the runc wrapper adds the hooks", envFile, envOnly.Config.Env)
	show(t, cm, "create", "-f", envFile)
	show(t, cm, "start", "-n", envOnly.Name)
	envApp := k.Get(t, envOnly.Name)
	fmt.Print("container output: ", k.WaitLog(t, envApp.ID, "can0 is here", 1, wait))
	envInside := kerneltest.Open(t, kerneltest.ProcessNS(envApp.State.Pid), "can0")
	ecu.Send(t, kerneltest.Frame{ID: 0x200, Data: []byte{1}})
	inside.Expect(t, []kerneltest.Frame{{ID: 0x200, Data: []byte{1}}}, wait)
	envInside.Expect(t, []kerneltest.Frame{{ID: 0x200, Data: []byte{1}}}, wait)
	fmt.Println("the ECU's 200#01 reached both containers' can0")

	say("kanto-can ls and status: attachments by Kanto name, gateway rules, counters, the bus's state")
	show(t, cm, "list")
	show(t, kc, "ls")
	show(t, kc, "status")

	say("kanto-can top --once: what the buses and attachments do, while the ECU sends 100 frames/s (cangen)")
	cangen := exec.Command("cangen", ecuIf, "-g", "10", "-n", "400", "-I", "300", "-L", "8")
	if err := cangen.Start(); err != nil {
		t.Fatal(err)
	}
	show(t, kc, "top", "--once", "--interval", "2s")
	if err := cangen.Wait(); err != nil {
		t.Fatalf("cangen: %v", err)
	}

	showFleetView(t)

	say("kanto-cm remove: the poststop hooks remove each container's interface and rules")
	inside.Close()
	envInside.Close()
	for _, name := range []string{withHooks.Name, envOnly.Name} {
		fmt.Printf("$ kanto-cm stop -s SIGKILL -n %s; kanto-cm remove -n %s\n", name, name)
		k.Remove(t, name)
	}
	if out := show(t, kc, "ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("left behind: %s", out)
	}
	fmt.Println("\ndemo: OK")
}
