package ditto

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mosquitto runs Debian's mosquitto (make setup installs it) on a free
// port of 127.0.0.1; it returns the port, a function that kills it, and
// its log lines.
func mosquitto(t *testing.T, port int) (int, func(), <-chan string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Skip("no mosquitto (make setup installs it)")
		}
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type all\n", port), 0o644)
	cmd := exec.Command(bin, "-c", conf)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), " running") {
				close(running)
			}
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case <-running:
	case <-time.After(timeout):
		cmd.Process.Kill()
		t.Fatal("mosquitto did not start")
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(stop)
	return port, stop, lines
}

// Over a real broker: the agent asks for the thing id, publishes its
// features on the answer, and after the broker restarts asks again and
// publishes them again.
func TestPahoOverMosquitto(t *testing.T) {
	port, stop, _ := mosquitto(t, 0)
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	got := make(chan string, 100)
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("test-connector").SetConnectRetry(true).
		SetAutoReconnect(true).SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(time.Second).SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe("e/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) }).Wait()
			c.Subscribe(TopicThingRequest, 1, func(c mqtt.Client, _ mqtt.Message) {
				c.Publish(TopicThingResponse, 0, false, thingAnswer)
			}).Wait()
			// Unprompted too, as suite-connector on each connect: the
			// agent may have asked before this subscribed.
			c.Publish(TopicThingResponse, 0, false, thingAnswer)
		})
	conn := mqtt.NewClient(opts)
	conn.Connect().Wait()
	defer conn.Disconnect(100)

	k := &kernel{st: sample()}
	a := New(Config{Read: k.read, SysModule: t.TempDir(), Version: "v", Debounce: 100 * time.Millisecond, Poll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, a, MQTTConfig{Broker: broker}) }()
	defer func() { cancel(); <-done }()

	// await reads publishes until every feature of want came.
	await := func(want ...string) {
		t.Helper()
		deadline := time.After(3 * timeout)
		for len(want) > 0 {
			select {
			case m := <-got:
				for i, w := range want {
					if strings.Contains(m, `"path":"/features/`+w+`"`) {
						if !strings.HasPrefix(m, "e/t-demo/org.example:gw1 ") {
							t.Errorf("published on %s", m)
						}
						want = append(want[:i], want[i+1:]...)
						break
					}
				}
			case <-deadline:
				t.Fatalf("%v not published", want)
			}
		}
	}
	await("CANManager", "CANBus:can0", "CANBus:vcan0", "CANMetrics")

	stop()
	_, _, log := mosquitto(t, port)
	// The broker's log witnesses the request, whoever connects first.
	deadline := time.After(3 * timeout)
	for asked := false; !asked; {
		select {
		case l := <-log:
			asked = strings.Contains(l, "Received PUBLISH from kanto-can") && strings.Contains(l, TopicThingRequest)
		case <-deadline:
			t.Fatal("no thing request after the restart")
		}
	}
	await("CANManager", "CANBus:can0", "CANBus:vcan0", "CANMetrics")
}
