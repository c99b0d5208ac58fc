package ditto

import "github.com/kanto-can/kanto-can/internal/attach"

// errorCounters are b's controller error counters; nil until the bus
// status carries them.
func errorCounters(b attach.HostBusStatus) *ErrorCounters { return nil }

// busMeasurements are a bus's counters; none until the bus status
// carries them.
func busMeasurements(b attach.HostBusStatus) []Measurement { return nil }
