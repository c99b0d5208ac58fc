// Package hook is kanto-can as an OCI runtime hook: runc runs it inside
// `runc create`, after the container's network namespace exists and before
// its entrypoint (prestart or createRuntime), and again in `runc delete`
// (poststop). It reads the container's state from stdin and the request
// from its own arguments and the container's own request: the annotation
// io.kanto-can.buses of the state (podman run --annotation) or else the
// KANTO_CAN variable of the container's environment; then it attaches or
// detaches through package attach.
//
// runc gives a hook exactly the environment the spec names, usually none:
// nothing here needs PATH or executes a program.
package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// EnvVar is the variable of a container's environment that asks for CAN.
const EnvVar = "KANTO_CAN"

// Annotation is the OCI annotation that asks for CAN, in KANTO_CAN's
// syntax (podman run --annotation io.kanto-can.buses=can0). When it is set
// (not blank) it is the container's request and KANTO_CAN is not read: an
// image may carry KANTO_CAN as a default, the annotation is what this run
// asks for.
const Annotation = "io.kanto-can.buses"

// State is the OCI runtime state runc writes to a hook's stdin.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// Phase says what the hook does.
type Phase string

const (
	Attach Phase = "attach" // prestart, createRuntime
	Detach Phase = "detach" // poststop
)

// PhaseOf maps an OCI hook name, or when it is empty the state's status,
// to a phase. Only the hooks the runtime runs in its own namespaces can
// attach: prestart and createRuntime (after the container's network
// namespace exists, before the entrypoint) and poststop. createContainer,
// startContainer and poststart run inside the container (or after its
// entrypoint started), where kanto-can has neither the host's network nor
// its privileges: refused, with the hook to use instead.
func PhaseOf(name string, st State) (Phase, error) {
	switch name {
	case "prestart", "createRuntime":
		return Attach, nil
	case "poststop":
		return Detach, nil
	case "createContainer", "startContainer":
		return "", fmt.Errorf("hook %s runs inside the container's namespaces, where kanto-can cannot reach the host's CAN buses: use createRuntime (or prestart) to attach, poststop to detach", name)
	case "poststart":
		return "", errors.New("hook poststart runs after the entrypoint started: use createRuntime (or prestart) to attach before it, poststop to detach")
	case "":
		switch st.Status {
		case "creating", "created":
			return Attach, nil
		case "stopped":
			return Detach, nil
		}
		return "", fmt.Errorf("container status %q: name the hook (prestart, createRuntime or poststop)", st.Status)
	}
	return "", fmt.Errorf("hook %q: want prestart, createRuntime or poststop", name)
}

// ReadState decodes the state runc passes on stdin.
func ReadState(r io.Reader) (State, error) {
	var st State
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return State{}, fmt.Errorf("reading the container state on stdin: %w", err)
	}
	if st.ID == "" {
		return State{}, errors.New("container state on stdin has no id")
	}
	return st, nil
}

// EnvRequest returns the KANTO_CAN value of the container's process
// environment from the bundle's config.json ("" when unset).
func EnvRequest(bundle string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", fmt.Errorf("reading the container's spec: %w", err)
	}
	var spec struct {
		Process *struct {
			Env []string `json:"env"`
		} `json:"process"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(bundle, "config.json"), err)
	}
	if spec.Process == nil {
		return "", nil
	}
	for _, kv := range spec.Process.Env {
		if v, ok := strings.CutPrefix(kv, EnvVar+"="); ok {
			return v, nil
		}
	}
	return "", nil
}

// Ask is a container's own request: a KANTO_CAN-syntax value and where it
// was found (for messages).
type Ask struct {
	Value string
	From  string // "KANTO_CAN" or "annotation io.kanto-can.buses"
}

// Blank says whether the container asked for nothing.
func (a Ask) Blank() bool { return strings.TrimSpace(a.Value) == "" }

// ContainerAsk returns the container's request: the annotation
// [Annotation] of its state when set, else KANTO_CAN from the bundle's
// config.json (blank when neither is set).
func ContainerAsk(st State) (Ask, error) {
	if v := st.Annotations[Annotation]; strings.TrimSpace(v) != "" {
		from := "annotation " + Annotation
		if err := splitAnnotation(v, st.Annotations); err != nil {
			return Ask{From: from}, fmt.Errorf("%s: %w", from, err)
		}
		return Ask{Value: v, From: from}, nil
	}
	env, err := EnvRequest(st.Bundle)
	if err != nil {
		return Ask{From: EnvVar}, err
	}
	return Ask{Value: env, From: EnvVar}, nil
}

// splitAnnotation fails when the container also has an annotation named
// like a bus option (dir, fd, rx, tx): podman 4.3 splits --annotation's
// value at commas, so `--annotation io.kanto-can.buses=can0,rx=7E8` gives
// the annotations io.kanto-can.buses=can0 and rx=7E8, and the request
// would silently lose its options (here: receive every id).
func splitAnnotation(value string, all map[string]string) error {
	for _, k := range []string{"dir", "fd", "rx", "tx"} {
		if v, ok := all[k]; ok {
			return fmt.Errorf("is %q and the container also has the annotation %s=%s: the engine split the value at its commas (podman's --annotation does); quote it whole: --annotation '\"%s=%s,%s=%s\"'", value, k, v, Annotation, value, k, v)
		}
	}
	return nil
}

// Request combines the hook's --bus arguments and the container's own
// request (see [ContainerAsk]) into one list of buses.
func Request(args []string, ask Ask) ([]request.Bus, error) {
	var buses []request.Bus
	for _, a := range args {
		b, err := request.ParseBus(a)
		if err != nil {
			return nil, fmt.Errorf("hook argument: %w", err)
		}
		buses = append(buses, b)
	}
	if !ask.Blank() {
		more, err := request.ParseList(ask.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ask.From, err)
		}
		buses = append(buses, more...)
	}
	if len(buses) == 0 {
		return nil, fmt.Errorf("no bus requested: give --bus arguments to the hook, set %s in the container's environment or annotate it with %s", EnvVar, Annotation)
	}
	if err := request.CheckSet(buses); err != nil {
		return nil, err
	}
	return buses, nil
}

// Resolver applies the admin's policy to a container's request; names are
// what the container is known by (its Kanto name, its id).
type Resolver func(names []string, req []request.Bus) (policy.Granted, error)

// Options are the hook's own arguments.
type Options struct {
	Buses []string // --bus
	// IfRequested: a container that asks for nothing (no --bus, no
	// annotation, no KANTO_CAN) is left alone, the hook exits 0 at once.
	// For hooks every container runs (podman's hooks.d with when.always).
	IfRequested bool
	// UIDMap is the content of /proc/self/uid_map ("" reads it): a hook in a
	// user namespace (a rootless engine) refuses to attach.
	UIDMap string
}

// Run does the hook's work for the container known by names (its Kanto
// name and id, see target.Containerd.Names; the first labels it). Messages
// for the user (the container log and runc's error) go to stderr; the
// returned error is one line.
func Run(phase Phase, st State, opts Options, names []string, resolve Resolver, stderr io.Writer) error {
	if phase == Detach {
		if opts.IfRequested && len(opts.Buses) == 0 {
			// A bundle that cannot be read any more: detach anyway.
			if ask, err := ContainerAsk(st); err == nil && ask.Blank() {
				return nil
			}
		}
		if err := checkUserNS(opts.UIDMap); err != nil {
			// Nothing can have been attached from a user namespace.
			return nil
		}
		h, err := attach.OpenHost()
		if err != nil {
			return err
		}
		defer h.Close()
		_, err = h.DetachContainer(st.ID)
		return err
	}
	ask, err := ContainerAsk(st)
	if err != nil {
		return err
	}
	if opts.IfRequested && len(opts.Buses) == 0 && ask.Blank() {
		return nil
	}
	buses, err := Request(opts.Buses, ask)
	if err != nil {
		return err
	}
	if err := checkUserNS(opts.UIDMap); err != nil {
		return err
	}
	granted, err := resolve(names, buses)
	if err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("container state has no pid (status %q): run kanto-can as a prestart or createRuntime hook", st.Status)
	}
	if host, err := target.HostNetwork(st.Pid); err != nil {
		return fmt.Errorf("pid %d: %w", st.Pid, err)
	} else if host {
		fmt.Fprintf(stderr, "kanto-can: %s uses the host's network namespace: it sees the host's CAN interfaces already, nothing to attach\n", label(names, st.ID))
		return nil
	}
	t, err := target.FromPID(st.Pid)
	if err != nil {
		return err
	}
	defer t.Close()
	t.Label, t.Container = label(names, st.ID), st.ID
	h, err := attach.OpenHost()
	if err != nil {
		return err
	}
	defer h.Close()
	_, err = h.Attach(t, granted)
	return err
}

// label names the container for messages and listings: "container NAME".
func label(names []string, id string) string {
	if len(names) > 0 && names[0] != "" {
		return "container " + names[0]
	}
	return "container " + id
}

// checkUserNS fails when uidMap (/proc/self/uid_map, read when "") is not
// the initial user namespace's: the hook then runs under a rootless engine
// (rootless podman or Docker), as root of a user namespace that owns
// neither the host's network namespace nor its CAN buses, and an attach
// would fail half way with EPERM.
func checkUserNS(uidMap string) error {
	if uidMap == "" {
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			// No user namespaces in this kernel: the initial one.
			return nil
		}
		uidMap = string(b)
	}
	outside, initial := InitialUserNS(uidMap)
	if initial {
		return nil
	}
	who := "a user namespace"
	if outside >= 0 {
		who = fmt.Sprintf("a user namespace (uid 0 here is uid %d of the host)", outside)
	}
	return fmt.Errorf("the hook runs in %s, as under rootless podman or Docker: a CAN interface needs CAP_NET_ADMIN in the host's network namespace, which a rootless engine does not have; run the container with the rootful engine (as root)", who)
}

// InitialUserNS says whether uidMap, the content of a /proc/PID/uid_map,
// is the initial user namespace's (one line "0 0 4294967295"). When it is
// not, outside is the host uid that the namespace's uid 0 is (-1 when the
// map does not map uid 0).
func InitialUserNS(uidMap string) (outside int64, initial bool) {
	lines := strings.Split(strings.TrimSpace(uidMap), "\n")
	outside = -1
	for _, l := range lines {
		var in, out, n int64
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "%d %d %d", &in, &out, &n); err != nil {
			continue
		}
		if len(lines) == 1 && in == 0 && out == 0 && n == 4294967295 {
			return 0, true
		}
		if in == 0 && n > 0 {
			outside = out
		}
	}
	return outside, false
}
