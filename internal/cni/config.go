// Package cni is kanto-can as a CNI plugin (spec 0.4.0, 1.0.0 and 1.1.0:
// ADD, DEL, CHECK, VERSION; STATUS and GC with 1.1.0), for Kubernetes and k3s through containerd's
// CRI, chained after the primary plugin of a conflist or alone as a
// secondary network (a Multus NetworkAttachmentDefinition). It is the
// binary cmd/kanto-can-cni, installed in the CNI bin dir as "kanto-can-cni"
// (the config's "type"), so that the CNI library stays out of kanto-can,
// which runs on every container start.
//
// The pod's network namespace (CNI_NETNS) is the target; the sandbox's id
// (CNI_CONTAINERID) is the container id of the attachments, so that a DEL
// finds them again without the namespace, and the daemon ends them when
// containerd reports the sandbox's task gone. The policy matches a pod by
// "NAMESPACE/NAME" (K8S_POD_NAMESPACE, K8S_POD_NAME) and by the sandbox id.
package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/kanto-can/kanto-can/internal/jsonerr"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/request"
)

// SpecVersions are the CNI spec versions the plugin supports (VERSION).
var SpecVersions = []string{"0.4.0", "1.0.0", "1.1.0"}

// PluginType is the name of the plugin's binary in the CNI bin dir, which
// a config's "type" names.
const PluginType = "kanto-can-cni"

// Config is the plugin's network configuration (one entry of a conflist's
// "plugins", or a whole NetworkAttachmentDefinition's config).
type Config struct {
	types.PluginConf
	// Buses every pod of the network gets, each in kanto-can's bus
	// syntax ("can0", "can1:vcan0,dir=rx,rx=7E8"). A pod's own request
	// (Args.CNI.Buses, CNI_ARGS KANTO_CAN) replaces them.
	Buses []string `json:"buses,omitempty"`
	// Policy is the admin's policy file (default policy.DefaultPath; a
	// file named here must exist).
	Policy string `json:"policy,omitempty"`
	// Records is the directory of the attachments' records, which the
	// daemon follows (default record.DefaultDir).
	Records string `json:"records,omitempty"`
	// Args are the conventional per-pod arguments: Multus puts a
	// network selection's "cni-args" in args.cni.
	Args *struct {
		CNI *PodArgs `json:"cni,omitempty"`
	} `json:"args,omitempty"`
	// RuntimeConfig is what the runtime fills in for the capabilities
	// the config declares. With "capabilities":
	// {"io.kubernetes.cri.pod-annotations": true}, containerd's and
	// CRI-O's CRI pass the pod's annotations: a pod made by kubelet
	// alone (no Multus) asks for its own buses with AnnotationBuses.
	RuntimeConfig struct {
		PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
	} `json:"runtimeConfig"`

	buses []request.Bus // Buses, parsed
}

// PodArgs are what a pod may ask through args.cni.
type PodArgs struct {
	Buses []string `json:"buses,omitempty"`
}

// Load decodes and validates a plugin config from stdin. Errors name the
// field at fault.
func Load(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("plugin config: %w", jsonerr.Wrap(data, err))
	}
	if err := checkKeys(data); err != nil {
		return nil, err
	}
	if c.CNIVersion == "" {
		return nil, errors.New("plugin config: cniVersion is missing")
	}
	if c.Type != "" && c.Type != PluginType && c.Type != "kanto-can" {
		// Only a mistake when someone copies a config: the runtime found
		// this binary by the type, whatever its name.
		return nil, fmt.Errorf("plugin config: type %q: this plugin is %q", c.Type, PluginType)
	}
	for i, s := range c.Buses {
		b, err := request.ParseBus(s)
		if err != nil {
			return nil, fmt.Errorf("plugin config: buses[%d]: %w", i, err)
		}
		c.buses = append(c.buses, b)
	}
	if err := request.CheckSet(c.buses); err != nil {
		return nil, fmt.Errorf("plugin config: buses: %w", err)
	}
	if c.Policy != "" && !filepath.IsAbs(c.Policy) {
		return nil, fmt.Errorf("plugin config: policy %q: an absolute path is needed", c.Policy)
	}
	if c.Records != "" && !filepath.IsAbs(c.Records) {
		return nil, fmt.Errorf("plugin config: records %q: an absolute path is needed", c.Records)
	}
	if c.Args != nil && c.Args.CNI != nil {
		for i, s := range c.Args.CNI.Buses {
			if _, err := request.ParseBus(s); err != nil {
				return nil, fmt.Errorf("plugin config: args.cni.buses[%d]: %w", i, err)
			}
		}
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, fmt.Errorf("plugin config: prevResult: %w", err)
		}
	}
	return &c, nil
}

// ownKeys are this plugin's keys; standardKeys those the CNI spec defines
// for a plugin's config or that runtimes put in it (libcni adds name,
// cniVersion, prevResult, runtimeConfig to each plugin of a list; the list's
// own keys are accepted as some tools copy them down). Any other key is a
// mistake that would otherwise attach nothing silently ("bus" for "buses").
var (
	ownKeys      = []string{"buses", "policy", "records"}
	standardKeys = []string{"cniVersion", "cniVersions", "name", "type", "args", "ipMasq", "ipam", "dns",
		"runtimeConfig", "capabilities", "prevResult", "disableCheck", "disableGC", "loadOnlyInlinedPlugins"}
)

// checkKeys refuses a top-level key that is neither the plugin's nor a
// standard one, naming it (sorted, so the first of several is stable).
func checkKeys(data []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("plugin config: %w", jsonerr.Wrap(data, err))
	}
	var unknown []string
	for k := range top {
		if !slices.Contains(ownKeys, k) && !slices.Contains(standardKeys, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("plugin config: unknown key %q (kanto-can-cni's keys: %s; and the CNI spec's)", unknown[0], strings.Join(ownKeys, ", "))
}

// RecordsDir is where the attachments' records go.
func (c *Config) RecordsDir() string {
	if c.Records != "" {
		return c.Records
	}
	return record.DefaultDir
}

// PolicyPath is the policy file, and whether the config named it.
func (c *Config) PolicyPath() (string, bool) {
	if c.Policy != "" {
		return c.Policy, true
	}
	return policy.DefaultPath, false
}

// AnnotationBuses is the pod annotation with a pod's own buses, in the
// syntax of a Kanto manifest's KANTO_CAN: buses separated by ";"
// ("can0,dir=rx,rx=7E8;can1"). The runtime passes it only when the
// network's config declares the capability io.kubernetes.cri.pod-annotations.
const AnnotationBuses = "kanto-can/buses"

// Request is what a pod asks for: its own buses (args.cni.buses, the pod
// annotation AnnotationBuses, then KANTO_CAN of CNI_ARGS) if it names
// any, else the network's. None is not an error: a pod without a request
// gets nothing.
func (c *Config) Request(a Args) ([]request.Bus, error) {
	var own []request.Bus
	if c.Args != nil && c.Args.CNI != nil {
		for i, s := range c.Args.CNI.Buses {
			b, err := request.ParseBus(s)
			if err != nil {
				return nil, fmt.Errorf("args.cni.buses[%d]: %w", i, err)
			}
			own = append(own, b)
		}
	}
	if s, ok := c.RuntimeConfig.PodAnnotations[AnnotationBuses]; ok {
		buses, err := request.ParseList(s)
		if err != nil {
			return nil, fmt.Errorf("pod annotation %s: %w", AnnotationBuses, err)
		}
		own = append(own, buses...)
	}
	for i, s := range a.Buses {
		b, err := request.ParseBus(s)
		if err != nil {
			return nil, fmt.Errorf("CNI_ARGS %s (%d): %w", ArgBus, i+1, err)
		}
		own = append(own, b)
	}
	if len(own) == 0 {
		return c.buses, nil
	}
	if err := request.CheckSet(own); err != nil {
		return nil, fmt.Errorf("the pod's request: %w", err)
	}
	return own, nil
}

// ArgBus is the CNI_ARGS key a runtime may give a pod's buses with, one
// bus per occurrence (CNI_ARGS separates its pairs with ";").
const ArgBus = "KANTO_CAN"

// Args are the CNI_ARGS the plugin reads.
type Args struct {
	PodName, PodNamespace string
	Buses                 []string // KANTO_CAN, in order
}

// ParseArgs parses CNI_ARGS ("K=V;K=V"). Unknown keys are ignored, as
// IgnoreUnknown asks and the runtimes expect; a pair without "=" is an
// error.
func ParseArgs(s string) (Args, error) {
	var a Args
	if strings.TrimSpace(s) == "" {
		return a, nil
	}
	for i, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return a, fmt.Errorf("CNI_ARGS: pair %d (%q) is not KEY=VALUE", i+1, pair)
		}
		switch k {
		case "K8S_POD_NAME":
			a.PodName = v
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = v
		case ArgBus:
			if v != "" {
				a.Buses = append(a.Buses, v)
			}
		}
	}
	return a, nil
}

// PolicyNames are the names a pod is matched by in the policy:
// "NAMESPACE/NAME" (just NAME when the runtime gives no namespace, as
// podman's CNI backend does); none without K8S_POD_NAME (the policy's
// default then applies, as for a target named by its netns). The sandbox
// id is not one of them: a pattern for Kanto container ids ("*") would
// match it. A pattern's "*" does not cross "/": "*/*" is every pod,
// "default/*" every pod of namespace default, and a pattern without "/"
// never matches a pod that has a namespace.
func PolicyNames(a Args) []string {
	switch {
	case a.PodName != "" && a.PodNamespace != "":
		return []string{a.PodNamespace + "/" + a.PodName}
	case a.PodName != "":
		return []string{a.PodName}
	}
	return nil
}

// Label names the pod in listings (kanto-can ls): "pod NAMESPACE/NAME",
// or "pod sandbox ID" without a pod name.
func Label(a Args, containerID string) string {
	if names := PolicyNames(a); len(names) > 0 {
		return "pod " + names[0]
	}
	return "pod sandbox " + containerID
}
