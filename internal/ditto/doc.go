// Package ditto shows kanto-can's CAN state to the fleet backend as
// Eclipse Ditto features of the device's thing, over Kanto's local MQTT
// broker, the way Kanto's own components do (suite-connector relays them
// to the cloud):
//
//   - CANManager: kanto-can's version, the CAN kernel modules present, the
//     buses with attachments, how many attachments, the last error;
//   - CANBus:<ifname>, one per host bus that exists and has attachments:
//     its state, bitrate, FD, error counters, and its attachments keyed by
//     container id (name, inside name, direction, filters, rate limit);
//   - CANMetrics: frame counters per bus and per attachment, sent as
//     periodic live messages (Kanto's Metrics contract) once requested.
//
// The features are on the root thing, whose id is asked of
// edge/thing/request (or fixed). Every thing-id answer (the cloud link came
// back) publishes every feature again; otherwise a feature is published
// when its JSON changes, at most once per second, and a bus's feature is
// deleted when the bus is gone or has no attachment left. Counters are
// not part of the features, so traffic causes no twin update.
//
// It is read-only: commands are refresh (CANManager) and request
// (CANMetrics); nothing attaches or detaches from the cloud.
//
// The files: envelope.go (topics, the Ditto protocol envelope, thing ids,
// headers), features.go (feature ids and values built from
// attach.Attachment and attach.HostBusStatus), metrics.go (the Metrics
// request and its data), agent.go (the state machine), client.go (the
// MQTT client it needs) and paho.go (that client over Eclipse Paho).
package ditto
