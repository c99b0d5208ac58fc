package ditto

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/policy"
)

// Feature ids and definitions. Definitions are in kanto-can's own
// namespace.
const (
	FeatureManager   = "CANManager"
	FeatureMetrics   = "CANMetrics"
	busFeaturePrefix = "CANBus:"

	DefinitionManager = "io.kanto-can:CANManager:1.1.0"
	DefinitionBus     = "io.kanto-can:CANBus:1.0.0"
	DefinitionMetrics = "io.kanto-can:CANMetrics:1.0.0"
)

// MaxFeatureBytes bounds a feature's value (AWS IoT's named shadows take
// 8 KB): a bus with more attachments than fit lists the first ones, by
// key, and says attachmentsTruncated.
const MaxFeatureBytes = 8192

// Modules are the kernel modules CANManager reports, as /sys/module names
// them.
var Modules = []string{"can", "can_raw", "can_gw", "vxcan", "vcan"}

// State is what the features are built from: the kernel's attachments
// and host buses (attach.Host.List and HostBuses), and the modules.
type State struct {
	Attachments []attach.Attachment
	Buses       []attach.HostBusStatus
	// Modules: which of Modules are present.
	Modules map[string]bool
	// Policy and Containerd: what the daemon reports besides the kernel
	// (Config.Health); nil: not shown.
	Policy     *PolicyStatus
	Containerd *ContainerdStatus
}

// Health is what CANManager shows besides the kernel's state, read at
// every look, even when the kernel cannot be read.
type Health struct {
	Policy     *PolicyStatus
	Containerd *ContainerdStatus
}

// PolicyStatus is the admin's policy in force (package policy's InForce):
// a fleet finds the devices without one (present false: every container
// may use every bus, both ways, with no rate limit).
type PolicyStatus struct {
	policy.InForce
	// Error: the file cannot be read or is invalid (hooks then refuse
	// every container that asks for CAN).
	Error string `json:"error,omitempty"`
}

// ContainerdStatus is the daemon's link to containerd, whose task events
// tell it which containers are gone.
type ContainerdStatus struct {
	Address    string   `json:"address"`
	Namespaces []string `json:"namespaces"`
	Connected  bool     `json:"connected"`
	// Error: why not, while not connected.
	Error string `json:"error,omitempty"`
}

// ReadModules says which of Modules are present under dir (/sys/module):
// loaded as modules, or built in and listed there.
func ReadModules(dir string) map[string]bool {
	m := make(map[string]bool, len(Modules))
	for _, name := range Modules {
		_, err := os.Stat(filepath.Join(dir, name))
		m[name] = err == nil
	}
	return m
}

// BusFeatureID is the id of a bus's feature: CANBus:<ifname>, where every
// byte of the interface name outside [a-zA-Z0-9_-] becomes _ and two hex
// digits (feature ids allow only [a-zA-Z0-9:_-]): can0 stays can0,
// "can.1" becomes can_2e1. The value's "bus" has the name unchanged.
func BusFeatureID(ifname string) string {
	var b strings.Builder
	b.WriteString(busFeaturePrefix)
	for i := 0; i < len(ifname); i++ {
		c := ifname[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// ours reports whether a feature id is one of ours (commands for others'
// features on the root thing are theirs to answer).
func ours(feature string) bool {
	return feature == FeatureManager || feature == FeatureMetrics || strings.HasPrefix(feature, busFeaturePrefix)
}

// ManagerStatus is CANManager's properties.status.
type ManagerStatus struct {
	Version string          `json:"version"`
	Modules map[string]bool `json:"modules"`
	// Buses are the host buses with attachments that exist (each has a
	// CANBus feature); MissingBuses those named by attachments that do
	// not exist now (their routes come back with them).
	Buses        []string `json:"buses"`
	MissingBuses []string `json:"missingBuses"`
	Attachments  int      `json:"attachments"`
	LastError    *Error   `json:"lastError,omitempty"`
	// Policy: the policy in force; Containerd: the link to containerd
	// (absent when the daemon does not watch it).
	Policy     *PolicyStatus     `json:"policy,omitempty"`
	Containerd *ContainerdStatus `json:"containerd,omitempty"`
}

// Error is the last error kanto-can met: reading the kernel's state, or a
// reconcile of the daemon.
type Error struct {
	Message string `json:"message"`
	Time    int64  `json:"time"` // unix seconds
}

// BusStatus is a CANBus feature's properties.status.
type BusStatus struct {
	Bus  string `json:"bus"`
	Kind string `json:"kind"` // can, vcan, vxcan
	Up   bool   `json:"up"`
	// State, Bitrate and DataBitrate: a CAN controller's; absent for
	// virtual buses (and a bitrate not set).
	State       string `json:"state,omitempty"`
	Bitrate     uint32 `json:"bitrate,omitempty"`
	DataBitrate uint32 `json:"dataBitrate,omitempty"`
	FD          bool   `json:"fd"`
	MTU         int    `json:"mtu"`
	// ErrorCounters: a CAN controller's transmit and receive error
	// counters, when its driver reports them.
	ErrorCounters *ErrorCounters `json:"errorCounters,omitempty"`
	// AttachmentCount counts every attachment; Attachments lists them
	// (all, unless AttachmentsTruncated).
	AttachmentCount      int                         `json:"attachmentCount"`
	Attachments          map[string]AttachmentStatus `json:"attachments"`
	AttachmentsTruncated bool                        `json:"attachmentsTruncated,omitempty"`
}

// ErrorCounters are a controller's error counters (IFLA_CAN_BERR_COUNTER).
type ErrorCounters struct {
	Tx uint16 `json:"tx"`
	Rx uint16 `json:"rx"`
}

// AttachmentStatus is one container's attachment to the bus, keyed by its
// container id (the target id, e.g. netns:4026532000, when it has none).
type AttachmentStatus struct {
	Name      string `json:"name,omitempty"` // the container's Kanto name
	Label     string `json:"label"`          // how it was attached ("container NAME", "pid 42")
	Inside    string `json:"inside"`         // the interface name inside the container
	Direction string `json:"direction"`      // both, rx, tx; none without rules
	// RxFilters and TxFilters are the allowed ids each way (can-utils
	// notation; "all" without a filter), empty for a direction without rules.
	RxFilters   []string   `json:"rxFilters"`
	TxFilters   []string   `json:"txFilters"`
	TxRateLimit *RateLimit `json:"txRateLimit,omitempty"`
	State       string     `json:"state"` // routed, or unrouted (no gateway rule)
	// Mode is "bridge" when kanto-can-daemon carries the frames (a kernel
	// without vxcan); absent for the gateway (vxcan and can-gw).
	Mode string `json:"mode,omitempty"`
}

// RateLimit is an attachment's transmit rate limit.
type RateLimit struct {
	FramesPerSecond uint64 `json:"framesPerSecond"`
	Burst           uint64 `json:"burst"`
}

// featureValue is a feature as Ditto holds it.
type featureValue struct {
	Definition []string `json:"definition"`
	Properties any      `json:"properties,omitempty"`
}

type statusProps struct {
	Status any `json:"status"`
}

// Features builds every feature's value from st: CANManager, CANMetrics,
// and CANBus:<ifname> for each bus that exists and has attachments.
// Counters are not part of them.
func Features(st State, version string, lastErr *Error) (map[string][]byte, error) {
	out := map[string][]byte{}
	mgr := ManagerStatus{
		Version: version, Modules: st.Modules, Buses: []string{}, MissingBuses: []string{},
		Attachments: len(st.Attachments), LastError: lastErr, Policy: st.Policy, Containerd: st.Containerd,
	}
	if mgr.Modules == nil {
		mgr.Modules = map[string]bool{}
	}
	onBus := map[string]int{}
	for _, a := range st.Attachments {
		onBus[a.HostBus]++
	}
	for _, b := range st.Buses {
		if onBus[b.Name] == 0 {
			continue // no attachment (left): no feature
		}
		if b.Index == 0 {
			mgr.MissingBuses = append(mgr.MissingBuses, b.Name)
			continue
		}
		mgr.Buses = append(mgr.Buses, b.Name)
		v, err := busFeature(b, st.Attachments)
		if err != nil {
			return nil, err
		}
		out[BusFeatureID(b.Name)] = v
	}
	v, err := json.Marshal(featureValue{Definition: []string{DefinitionManager}, Properties: statusProps{mgr}})
	if err != nil {
		return nil, err
	}
	out[FeatureManager] = v
	if out[FeatureMetrics], err = json.Marshal(featureValue{Definition: []string{DefinitionMetrics}}); err != nil {
		return nil, err
	}
	return out, nil
}

// busFeature is bus b's CANBus value, cut to MaxFeatureBytes.
func busFeature(b attach.HostBusStatus, all []attach.Attachment) ([]byte, error) {
	s := BusStatus{
		Bus: b.Name, Kind: b.Kind, Up: b.Up, State: b.State, Bitrate: b.Bitrate, DataBitrate: b.DataBitrate,
		FD: b.FD, MTU: b.MTU, ErrorCounters: errorCounters(b), Attachments: map[string]AttachmentStatus{},
	}
	for _, a := range all {
		if a.HostBus != b.Name {
			continue
		}
		s.AttachmentCount++
		s.Attachments[AttachmentKey(a)] = attachmentStatus(a)
	}
	encode := func() ([]byte, error) {
		return json.Marshal(featureValue{Definition: []string{DefinitionBus}, Properties: statusProps{s}})
	}
	v, err := encode()
	if err != nil || len(v) <= MaxFeatureBytes {
		return v, err
	}
	// Too big: keep the first attachments by key that fit.
	keys := make([]string, 0, len(s.Attachments))
	for k := range s.Attachments {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	full := s.Attachments
	s.AttachmentsTruncated = true
	lo, hi := 0, len(keys) // the largest n with keys[:n] fitting is in [lo, hi)
	for lo < hi {
		n := (lo + hi + 1) / 2
		s.Attachments = map[string]AttachmentStatus{}
		for _, k := range keys[:n] {
			s.Attachments[k] = full[k]
		}
		if v, err = encode(); err != nil {
			return nil, err
		}
		if len(v) <= MaxFeatureBytes {
			lo = n
		} else {
			hi = n - 1
		}
	}
	s.Attachments = map[string]AttachmentStatus{}
	for _, k := range keys[:lo] {
		s.Attachments[k] = full[k]
	}
	return encode()
}

// AttachmentKey is an attachment's key in its bus's feature: the
// container id, or the target id when there is none.
func AttachmentKey(a attach.Attachment) string {
	if a.Container != "" {
		return a.Container
	}
	return a.Target
}

func attachmentStatus(a attach.Attachment) AttachmentStatus {
	s := AttachmentStatus{
		Name: a.Name, Label: a.Label, Inside: a.Inside, Direction: a.Direction(),
		RxFilters: []string{}, TxFilters: []string{}, State: "routed",
	}
	for _, r := range a.Rules {
		list := &s.RxFilters
		if r.Direction == "tx" {
			list = &s.TxFilters
		}
		if !slices.Contains(*list, r.Filter) {
			*list = append(*list, r.Filter)
		}
	}
	if len(a.Rules) == 0 {
		s.State = "unrouted"
	}
	if g := a.Bridge; g != nil {
		// Routed by the daemon while the bus exists (this feature is only
		// made for a bus that does).
		s.Mode, s.State = attach.ModeBridge, "routed"
		s.RxFilters = append(s.RxFilters, g.RX...)
		s.TxFilters = append(s.TxFilters, g.TX...)
	}
	if a.TxRate != nil {
		s.TxRateLimit = &RateLimit{FramesPerSecond: a.TxRate.FramesPerSecond, Burst: a.TxRate.Burst}
	}
	return s
}
