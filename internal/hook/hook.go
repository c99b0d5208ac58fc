// Package hook is kanto-can as an OCI runtime hook: runc runs it inside
// `runc create`, after the container's network namespace exists and before
// its entrypoint (prestart or createRuntime), and again in `runc delete`
// (poststop). It reads the container's state from stdin and the request
// from its own arguments and the KANTO_CAN variable of the container's
// environment, then attaches or detaches through package attach.
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
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// EnvVar is the variable of a container's environment that asks for CAN.
const EnvVar = "KANTO_CAN"

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

// Request combines the hook's --bus arguments and the container's
// KANTO_CAN into one list of buses.
func Request(args []string, env string) ([]request.Bus, error) {
	var buses []request.Bus
	for _, a := range args {
		b, err := request.ParseBus(a)
		if err != nil {
			return nil, fmt.Errorf("hook argument: %w", err)
		}
		buses = append(buses, b)
	}
	if strings.TrimSpace(env) != "" {
		more, err := request.ParseList(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvVar, err)
		}
		buses = append(buses, more...)
	}
	if len(buses) == 0 {
		return nil, fmt.Errorf("no bus requested: give --bus arguments to the hook or set %s in the container's environment", EnvVar)
	}
	if err := request.CheckSet(buses); err != nil {
		return nil, err
	}
	return buses, nil
}

// Resolver applies the admin's policy to a container's request; names are
// what the container is known by (its Kanto name, its id).
type Resolver func(names []string, req []request.Bus) ([]request.Bus, error)

// Run does the hook's work for the container known by names (its Kanto
// name and id, see target.Containerd.Names; the first labels it). Messages
// for the user (the container log and runc's error) go to stderr; the
// returned error is one line.
func Run(phase Phase, st State, busArgs []string, names []string, resolve Resolver, stderr io.Writer) error {
	if phase == Detach {
		h, err := attach.OpenHost()
		if err != nil {
			return err
		}
		defer h.Close()
		_, err = h.DetachContainer(st.ID)
		return err
	}
	env, err := EnvRequest(st.Bundle)
	if err != nil {
		return err
	}
	buses, err := Request(busArgs, env)
	if err != nil {
		return err
	}
	if buses, err = resolve(names, buses); err != nil {
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
	_, err = h.Attach(t, buses)
	return err
}

// label names the container for messages and listings: "container NAME".
func label(names []string, id string) string {
	if len(names) > 0 && names[0] != "" {
		return "container " + names[0]
	}
	return "container " + id
}
