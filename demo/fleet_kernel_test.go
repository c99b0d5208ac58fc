//go:build kernel

package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest"
)

// showFleetView starts kanto-can-daemon with --ditto on a local broker and
// prints the features a fleet backend would get: each message on the
// events topic, as a subscriber on the broker sees it.
func showFleetView(t *testing.T) {
	say("The fleet's view: kanto-can-daemon --ditto publishes the CAN state as Eclipse Ditto features on Kanto's local MQTT broker")
	m := kerneltest.StartMosquitto(t, 0, wait)
	port := fmt.Sprint(m.Port)
	// suite-connector answers edge/thing/request with the device's thing
	// id; here a retained answer stands in for it.
	thing := `{"deviceId":"demo:vehicle-1","tenantId":"demo-tenant"}`
	show(t, "/usr/bin/mosquitto_pub", "-p", port, "-r", "-t", "edge/thing/response", "-m", thing)
	fmt.Println("(a retained thing id stands in for suite-connector's answer)")

	// What the connector would relay: 4 features (CANManager, CANMetrics,
	// CANBus:can0, CANBus:can1).
	sub := exec.Command("/usr/bin/mosquitto_sub", "-p", port, "-i", "fleet-view", "-v", "-t", "e", "-t", "e/#", "-C", "4", "-W", "120")
	var out bytes.Buffer
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	m.Log.Await(t, 0, wait, func(l string) bool { return strings.Contains(l, "Received SUBSCRIBE from fleet-view") })
	fmt.Printf("$ kanto-can daemon --ditto --mqtt-broker tcp://127.0.0.1:%s\n", port)
	kerneltest.StartDaemon(t, wait, "--ditto", "--mqtt-broker=tcp://127.0.0.1:"+port, "--containerd-address=")
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out.String())
	}
	fmt.Printf("$ mosquitto_sub -v -t e -t 'e/#'\n")
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		topic, payload, _ := strings.Cut(line, " ")
		var env struct {
			Topic string          `json:"topic"`
			Path  string          `json:"path"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal([]byte(payload), &env); err != nil {
			t.Fatalf("%s: not a Ditto message: %v: %s", topic, err, payload)
		}
		var value bytes.Buffer
		json.Indent(&value, env.Value, "  ", "  ")
		fmt.Printf("%s  %s  %s\n  %s\n", topic, env.Topic, env.Path, value.String())
	}
}
