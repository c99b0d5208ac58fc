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
	"github.com/kanto-can/kanto-can/internal/kerneltest/kantotest"
)

// showFleetView starts kanto-can-daemon with --ditto on a local broker,
// Kanto's suite-connector between it and a second mosquitto that stands
// where the cloud's MQTT endpoint (Eclipse Hono) would be, and prints what
// a fleet backend gets there: each message on the device's event topic.
func showFleetView(t *testing.T) {
	say("The fleet's view: kanto-can-daemon --ditto publishes the CAN state as Eclipse Ditto features; Kanto's suite-connector carries them to the cloud")
	local := kerneltest.StartMosquitto(t, 0, wait)
	hub := kerneltest.StartMosquitto(t, 0, wait)
	fmt.Printf("(a second mosquitto on port %d stands in for the cloud's MQTT endpoint)\n", hub.Port)
	fmt.Printf("$ suite-connector -localAddress %s -address %s -deviceId %s -tenantId %s ...\n",
		local.URL(), hub.URL(), kantotest.DeviceID, kantotest.TenantID)
	kantotest.StartSuiteConnector(t, local.URL(), hub.URL(), wait)

	// What reaches the cloud: 4 features (CANManager, CANMetrics,
	// CANBus:can0, CANBus:can1).
	sub := exec.Command("/usr/bin/mosquitto_sub", "-p", fmt.Sprint(hub.Port), "-i", "fleet-view", "-v", "-t", "event/#", "-C", "4", "-W", "120")
	var out bytes.Buffer
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	hub.Log.Await(t, 0, wait, func(l string) bool { return strings.Contains(l, "Received SUBSCRIBE from fleet-view") })
	fmt.Printf("$ kanto-can daemon --ditto --mqtt-broker %s\n", local.URL())
	kerneltest.StartDaemon(t, wait, "--ditto", "--mqtt-broker="+local.URL(), "--containerd-address=")
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out.String())
	}
	fmt.Printf("$ mosquitto_sub -p %d -v -t 'event/#'    # on the cloud's side\n", hub.Port)
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
