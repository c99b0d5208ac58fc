package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/version"
)

// DittoConfig configures the Ditto features (package ditto).
type DittoConfig struct {
	Enabled bool
	// Broker is the local MQTT broker's URL (ditto.DefaultBroker).
	Broker string
	// ClientID is the MQTT client id (ditto.DefaultClientID).
	ClientID string
	// ThingID is the thing's id; "" asks edge/thing/request.
	ThingID string
	// Poll is how often the state is read to notice changes no event
	// reports (a controller's error state).
	Poll time.Duration
}

// Validate checks the configuration of the Ditto features; its errors
// name the daemon's flags.
func (c DittoConfig) Validate() error {
	if err := ditto.ParseBroker(c.Broker); err != nil {
		return fmt.Errorf("--mqtt-broker %w", err)
	}
	if err := ditto.ParseClientID(c.ClientID); err != nil {
		return fmt.Errorf("--mqtt-client-id: %w", err)
	}
	if c.ThingID != "" {
		if err := ditto.ParseThingID(c.ThingID); err != nil {
			return fmt.Errorf("--thing-id: %w", err)
		}
	}
	if c.Poll < 100*time.Millisecond {
		return fmt.Errorf("--ditto-poll %v: at least 100ms", c.Poll)
	}
	return nil
}

// startDitto starts the Ditto features' agent (--ditto): it reads the
// attachments and buses through a host of its own, and runs until ctx is
// done.
func (d *Daemon) startDitto(ctx context.Context) error {
	cfg := d.cfg
	if err := cfg.Ditto.Validate(); err != nil {
		return err
	}
	d.ditto = ditto.New(ditto.Config{
		ThingID: cfg.Ditto.ThingID, Poll: cfg.Ditto.Poll, Version: version.Version(), Log: cfg.Log,
		// Beside the records: it lasts as long as they do (a
		// restarted daemon, not a reboot).
		Memory: filepath.Join(cfg.Records, record.DittoMemory),
		Read: func() (ditto.State, error) {
			list, buses, err := readState(openHost(cfg.Records), cfg.Kanto.Names)
			if err != nil {
				return ditto.State{}, err
			}
			list, err = recorded(list, cfg.Records)
			return ditto.State{Attachments: list, Buses: buses}, err
		},
		Health: func() ditto.Health {
			return ditto.Health{Policy: d.policy.status(), Containerd: d.containerdStatus()}
		},
	})
	// Its end (ctx done) is not an error of the daemon's.
	go ditto.Run(ctx, d.ditto, ditto.MQTTConfig{Broker: cfg.Ditto.Broker, ClientID: cfg.Ditto.ClientID, Log: cfg.Log})
	return nil
}

// readState is readKernel for the Ditto features, which take the whole
// state or none.
func readState(open hostOpener, kantoNames func() map[string]string) ([]attach.Attachment, []attach.HostBusStatus, error) {
	st := readKernel(open, kantoNames)
	if err := errors.Join(st.listErr, st.busesErr); err != nil {
		return nil, nil, err
	}
	return st.list, st.buses, nil
}

// recorded keeps the attachments that have their record. An attach writes
// the record last, after the host end and every rule: an attachment
// without one is being made (its rules one way only, say), or an orphan
// that a reconcile removes. The twin shows neither.
func recorded(list []attach.Attachment, records string) ([]attach.Attachment, error) {
	recs, err := record.List(records)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(recs))
	for _, r := range recs {
		have[r.HostEnd] = true
	}
	kept := list[:0:0]
	for _, a := range list {
		if have[a.HostEnd] || a.Mode == attach.ModeBridge { // a bridged one is listed from its record
			kept = append(kept, a)
		}
	}
	return kept, nil
}
