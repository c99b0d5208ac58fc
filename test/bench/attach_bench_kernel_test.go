//go:build kernel

package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// container is a stand-in container: this test binary, re-executed as an
// idle process cloned into a network namespace of its own.
type container struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

const childEnv = "KANTO_CAN_BENCH_CONTAINER"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		// The container's "app": say it is up, then idle until stdin closes.
		os.Stdout.WriteString("ready\n")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// newContainer starts a container and returns once its process is up and
// idle, so that its start-up does not compete with what is measured next.
func newContainer(b *testing.B) *container {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("container did not start: %q, %v", line, err)
	}
	return &container{cmd: cmd, stdin: stdin}
}

func (c *container) pid() string { return strconv.Itoa(c.cmd.Process.Pid) }

func (c *container) stop() {
	c.stdin.Close()
	c.cmd.Wait()
}

func run(b *testing.B, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// BenchmarkAttach measures attaching the 1st and the 200th container to one
// classic bus (so kanto-can and the recipe both make two rules), reporting
// medians in milliseconds:
//   - kanto-can: the whole `kanto-can attach --pid PID --bus benchbus:can0` process;
//   - recipe: the manual recipe's five processes (ip, ip, nsenter, cangw, cangw);
//   - x-faster: recipe / kanto-can;
//   - floor: a static Go binary that does nothing, and `kanto-can --version`;
//   - netlink: kanto-can's attach call in process, without process start-up.
//
// Each iteration measures all of them back to back, so drifts of the
// emulated machine's speed hit them alike. The other N-1 containers stay
// attached while the Nth is measured; the measured attachments are removed
// again outside the timed part.
func BenchmarkAttach(b *testing.B) {
	kerneltest.Require(b)
	kc := kerneltest.Binary(b)
	noop := os.Getenv("KANTO_CAN_NOOP_BIN")
	if noop == "" {
		b.Fatal("KANTO_CAN_NOOP_BIN: set it to a static Go binary that does nothing (test/bench/noop)")
	}
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
		if _, err := host.Attach(t, grant([]request.Bus{bus})); err != nil {
			b.Fatal(err)
		}
		return t
	}
	attached := 0
	for _, n := range []int{1, 200} {
		for ; attached < n-1; attached++ {
			attachInProcess(b, kerneltest.NewNS(b).Path()).Close()
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var tNoop, tVersion, tKC, tRecipe, tNetlink []time.Duration
			timed := func(into *[]time.Duration, fn func()) {
				start := time.Now()
				fn()
				*into = append(*into, time.Since(start))
			}
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				c1, c2 := newContainer(b), newContainer(b)
				timed(&tNoop, func() { run(b, noop) })
				timed(&tVersion, func() { run(b, kc, "--version") })

				timed(&tKC, func() { run(b, kc, "attach", "--pid", c1.pid(), "--bus", "benchbus:can0") })
				run(b, kc, "detach", "--pid", c1.pid())
				c1.stop()

				hostEnd, peer := fmt.Sprintf("vxr%da", i), fmt.Sprintf("vxr%db", i)
				timed(&tRecipe, func() {
					run(b, "ip", "link", "add", hostEnd, "up", "type", "vxcan", "peer", "name", peer)
					run(b, "ip", "link", "set", peer, "netns", c2.pid())
					run(b, "nsenter", "-t", c2.pid(), "-n", "ip", "link", "set", peer, "up")
					run(b, "cangw", "-A", "-s", "benchbus", "-d", hostEnd, "-e")
					run(b, "cangw", "-A", "-s", hostEnd, "-d", "benchbus", "-e")
				})
				run(b, "ip", "link", "del", hostEnd)
				c2.stop()

				ns := kerneltest.NewNS(b)
				var t *target.Target
				timed(&tNetlink, func() { t = attachInProcess(b, ns.Path()) })
				if _, err := host.Detach(t, nil); err != nil {
					b.Fatal(err)
				}
				t.Close()
			}
			kcMed, recipeMed := median(tKC), median(tRecipe)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(ms(kcMed), "ms/kanto-can")
			b.ReportMetric(ms(recipeMed), "ms/recipe")
			b.ReportMetric(float64(recipeMed)/float64(kcMed), "x-faster")
			b.ReportMetric(ms(median(tNoop)), "ms/floor-go-noop")
			b.ReportMetric(ms(median(tVersion)), "ms/floor-kanto-can-version")
			b.ReportMetric(ms(median(tNetlink)), "ms/netlink")
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// grant grants buses as no policy file does: as they are.
func grant(buses []request.Bus) policy.Granted {
	g, _ := (*policy.Policy)(nil).Resolve(nil, buses)
	return g
}
