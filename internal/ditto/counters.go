package ditto

import "github.com/kanto-can/kanto-can/internal/attach"

// errorCounters are b's controller error counters (transmit, receive),
// when its driver reports both.
func errorCounters(b attach.HostBusStatus) *ErrorCounters {
	if b.Errors == nil || b.Errors.TxErrorCounter == nil || b.Errors.RxErrorCounter == nil {
		return nil
	}
	return &ErrorCounters{Tx: *b.Errors.TxErrorCounter, Rx: *b.Errors.RxErrorCounter}
}

// busMeasurements are a bus's counters: the interface's frames, bytes,
// errors and drops each way, and a controller's error counters and error
// events.
func busMeasurements(b attach.HostBusStatus) []Measurement {
	var ms []Measurement
	add := func(id string, v float64) { ms = append(ms, Measurement{ID: id, Value: v}) }
	if c := b.Counters; c != nil {
		add("frames.rx", float64(c.RxFrames))
		add("frames.tx", float64(c.TxFrames))
		add("bytes.rx", float64(c.RxBytes))
		add("bytes.tx", float64(c.TxBytes))
		add("errors.rx", float64(c.RxErrors))
		add("errors.tx", float64(c.TxErrors))
		add("dropped.rx", float64(c.RxDropped))
		add("dropped.tx", float64(c.TxDropped))
	}
	if e := b.Errors; e != nil {
		if e.TxErrorCounter != nil {
			add("controller.tx.error.counter", float64(*e.TxErrorCounter))
		}
		if e.RxErrorCounter != nil {
			add("controller.rx.error.counter", float64(*e.RxErrorCounter))
		}
		add("controller.bus.errors", float64(e.BusErrors))
		add("controller.error.warning", float64(e.ErrorWarning))
		add("controller.error.passive", float64(e.ErrorPassive))
		add("controller.bus.off", float64(e.BusOff))
		add("controller.arbitration.lost", float64(e.ArbitrationLost))
		add("controller.restarts", float64(e.Restarts))
	}
	return ms
}
