//go:build kernel

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// container is a stand-in container: a process cloned into a network
// namespace of its own (so the namespace exists as soon as Start returns).
type container struct {
	cmd *exec.Cmd
}

func newContainer(b *testing.B) *container {
	cmd := exec.Command("sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &container{cmd: cmd}
}

func (c *container) pid() string { return strconv.Itoa(c.cmd.Process.Pid) }

func (c *container) stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

func run(b *testing.B, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// BenchmarkAttach measures attaching the 1st and the 200th container to one
// classic bus (so kanto-can and the recipe both make two rules):
//   - kanto-can: the whole `kanto-can attach --pid PID --bus benchbus` process;
//   - recipe: the manual recipe's five processes (ip, ip, nsenter, cangw, cangw);
//   - netlink: kanto-can's attach call in process, without process start-up.
//
// The other N-1 containers stay attached while the Nth is measured; each
// measured attachment is removed again outside the timed part.
func BenchmarkAttach(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	kerneltest.VCAN(b, "benchbus", 16)
	host, err := attach.OpenHost()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	bus, err := request.ParseBus("benchbus:can0")
	if err != nil {
		b.Fatal(err)
	}
	attachInProcess := func(b *testing.B, path string) *target.Target {
		t, err := target.FromPath(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := host.Attach(t, []request.Bus{bus}); err != nil {
			b.Fatal(err)
		}
		return t
	}
	// The floor: any static Go binary, and kanto-can doing no work.
	if noop := os.Getenv("KANTO_CAN_NOOP_BIN"); noop != "" {
		b.Run("floor/go-noop", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				run(b, noop)
			}
		})
	}
	b.Run("floor/kanto-can-version", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			run(b, kc, "--version")
		}
	})
	attached := 0
	for _, n := range []int{1, 200} {
		for ; attached < n-1; attached++ {
			attachInProcess(b, kerneltest.NewNS(b).Path()).Close()
		}
		b.Run(fmt.Sprintf("N=%d/kanto-can", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := newContainer(b)
				b.StartTimer()
				run(b, kc, "attach", "--pid", c.pid(), "--bus", "benchbus:can0")
				b.StopTimer()
				run(b, kc, "detach", "--pid", c.pid())
				c.stop()
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("N=%d/recipe", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := newContainer(b)
				hostEnd, peer := fmt.Sprintf("vxr%da", i), fmt.Sprintf("vxr%db", i)
				b.StartTimer()
				run(b, "ip", "link", "add", hostEnd, "up", "type", "vxcan", "peer", "name", peer)
				run(b, "ip", "link", "set", peer, "netns", c.pid())
				run(b, "nsenter", "-t", c.pid(), "-n", "ip", "link", "set", peer, "up")
				run(b, "cangw", "-A", "-s", "benchbus", "-d", hostEnd, "-e")
				run(b, "cangw", "-A", "-s", hostEnd, "-d", "benchbus", "-e")
				b.StopTimer()
				run(b, "ip", "link", "del", hostEnd)
				c.stop()
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("N=%d/netlink", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ns := kerneltest.NewNS(b)
				b.StartTimer()
				t := attachInProcess(b, ns.Path())
				b.StopTimer()
				if _, err := host.Detach(t, nil); err != nil {
					b.Fatal(err)
				}
				t.Close()
				b.StartTimer()
			}
		})
	}
}
