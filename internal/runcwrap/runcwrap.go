// Package runcwrap is kanto-can installed as `runc` ahead of the real runc
// in containerd's PATH (e.g. /usr/local/sbin/runc -> kanto-can). On
// `runc create` of a container whose process environment has KANTO_CAN, in
// a containerd namespace it serves (default kanto-cm), it adds kanto-can's
// createRuntime and poststop hooks to the bundle's config.json; then, for
// every call, it executes the real runc with the same arguments, environment
// and standard streams, so its exit code is runc's.
//
// createRuntime, not the deprecated prestart: both run in the runtime's
// namespaces after the container's network namespace exists and before the
// entrypoint, and runc runs createRuntime since 1.0 (Debian 12 and Leda
// have 1.1). Manifests keep prestart, the only pre-start kind Kanto knows.
//
// This covers every Kanto front end, including those that drop a manifest's
// hooks (Ditto, the Update Agent, the auto-deployer's init-dir format): the
// environment survives them all.
//
// The same wrapper is a runtime of its own for engines that name their
// runtime by path (Docker's "runtimes" in daemon.json, dockerd
// --add-runtime, podman --runtime): called by any other name with runc's
// command line (see [CalledAsRuntime]), it serves every namespace, since
// choosing the runtime is the container's opt-in.
package runcwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kanto-can/kanto-can/internal/atomicfile"
	"github.com/kanto-can/kanto-can/internal/hook"
)

// Name is the name kanto-can must be called by to act as the wrapper.
const Name = "runc"

// Environment of the wrapper (containerd's environment, e.g. set in a
// systemd drop-in).
const (
	// EnvNamespaces lists the containerd namespaces served, comma-separated.
	EnvNamespaces = "KANTO_CAN_NAMESPACES"
	// EnvRealRunc names the real runc, instead of a PATH search.
	EnvRealRunc = "KANTO_CAN_RUNC"
)

// DefaultNamespaces is Kanto container-management's namespace.
const DefaultNamespaces = "kanto-cm"

// CalledAsRuntime says whether args (without the program name) are a
// runc command line rather than kanto-can's own: they begin with one of
// runc's global flags, as every engine's call does (Docker's shim:
// --root /var/run/docker/runtime-runc/moby --log ... create ...; podman:
// --root ... or --systemd-cgroup ...). kanto-can's own commands never
// begin with these.
func CalledAsRuntime(args []string) bool {
	if len(args) == 0 {
		return false
	}
	name, _, _, isFlag := flag(args[0])
	if !isFlag {
		return false
	}
	switch name {
	case "root", "log", "log-format", "systemd-cgroup", "debug", "criu", "rootless":
		return true
	}
	return false
}

// Main runs the wrapper and, unless something fails before, does not return:
// it replaces itself with the real runc. Called as "runc" it serves the
// namespaces of KANTO_CAN_NAMESPACES (default kanto-cm); called as a
// runtime of its own (allNamespaces) every namespace, unless
// KANTO_CAN_NAMESPACES is set.
func Main(args []string, stderr io.Writer) int {
	return main(args, stderr, false)
}

// MainRuntime is [Main] for kanto-can named as an engine's runtime.
func MainRuntime(args []string, stderr io.Writer) int {
	return main(args, stderr, true)
}

func main(args []string, stderr io.Writer, allNamespaces bool) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "kanto-can (as runc): own executable: %v\n", err)
		return 127
	}
	real, err := FindRunc(self, os.Getenv(EnvRealRunc), os.Getenv("PATH"))
	if err != nil {
		fmt.Fprintf(stderr, "kanto-can (as runc): %v\n", err)
		return 127
	}
	if inv, ok := Parse(args[1:]); ok && inv.Create && serves(inv.Namespace(), allNamespaces) {
		if err := Inject(inv.Bundle, self); err != nil {
			fmt.Fprintf(stderr, "kanto-can (as runc): %v\n", err)
			return 1
		}
	}
	err = syscall.Exec(real, args, os.Environ())
	fmt.Fprintf(stderr, "kanto-can (as runc): exec %s: %v\n", real, err)
	return 127
}

func serves(ns string, all bool) bool {
	list := os.Getenv(EnvNamespaces)
	if list == "" {
		if all {
			return true
		}
		list = DefaultNamespaces
	}
	for _, n := range strings.Split(list, ",") {
		if strings.TrimSpace(n) == ns && ns != "" {
			return true
		}
	}
	return false
}

// Invocation is what the wrapper needs to know of a runc command line.
type Invocation struct {
	Root   string // --root: containerd passes <state>/runc/<namespace>
	Create bool   // the command is create (or run, which creates)
	Bundle string // --bundle of create; "" = the working directory
}

// Namespace is the containerd namespace, the last element of --root.
func (inv Invocation) Namespace() string {
	if inv.Root == "" {
		return ""
	}
	return filepath.Base(inv.Root)
}

// runc's global flags that take a value.
var globalWithValue = map[string]bool{"log": true, "log-format": true, "root": true, "criu": true, "rootless": true}

// Parse reads runc's global flags and command. ok is false when there is no
// command.
func Parse(args []string) (inv Invocation, ok bool) {
	i := 0
	for ; i < len(args); i++ {
		name, val, hasVal, isFlag := flag(args[i])
		if !isFlag {
			break
		}
		if globalWithValue[name] && !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		if name == "root" {
			inv.Root = val
		}
	}
	if i == len(args) {
		return inv, false
	}
	cmd := args[i]
	if cmd != "create" && cmd != "run" {
		return inv, true
	}
	inv.Create = true
	for j := i + 1; j < len(args); j++ {
		name, val, hasVal, isFlag := flag(args[j])
		if !isFlag {
			continue
		}
		if name == "bundle" || name == "b" {
			if !hasVal && j+1 < len(args) {
				j++
				val = args[j]
			}
			inv.Bundle = val
		}
	}
	return inv, true
}

// flag splits "--name=value", "-name value" and the like (runc's flag
// parser takes one or two dashes).
func flag(arg string) (name, val string, hasVal, isFlag bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", "", false, false
	}
	name = strings.TrimLeft(arg, "-")
	name, val, hasVal = strings.Cut(name, "=")
	return name, val, hasVal, true
}

// FindRunc finds the real runc: explicit, else the first "runc" in PATH,
// then in the usual directories, that is not this very executable (by file
// identity, so symlinks and hard links to kanto-can are skipped). It never
// returns self.
func FindRunc(self, explicit, path string) (string, error) {
	selfInfo, err := os.Stat(self)
	if err != nil {
		return "", err
	}
	isReal := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 && !os.SameFile(fi, selfInfo)
	}
	if explicit != "" {
		if !isReal(explicit) {
			return "", fmt.Errorf("%s=%s is not an executable other than kanto-can", EnvRealRunc, explicit)
		}
		return explicit, nil
	}
	dirs := append(filepath.SplitList(path), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, Name); isReal(p) {
			return p, nil
		}
	}
	return "", errors.New("no real runc found in PATH or the usual directories (set " + EnvRealRunc + ")")
}

// ociHook is an entry of the spec's hooks lists.
type ociHook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout *int     `json:"timeout,omitempty"`
}

// Inject adds kanto-can's createRuntime and poststop hooks to
// bundle/config.json when the container's environment has KANTO_CAN; a spec
// without it is not touched at all (not even rewritten). Adding twice, or to
// a spec that has kanto-can's hooks from a manifest, changes nothing.
func Inject(bundle, self string) error {
	path := filepath.Join(bundle, "config.json")
	if bundle == "" {
		path = "config.json"
	}
	env, err := hook.EnvRequest(filepath.Dir(path))
	if err != nil || env == "" {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	hooks := map[string]json.RawMessage{}
	if h, ok := spec["hooks"]; ok && string(h) != "null" {
		if err := json.Unmarshal(h, &hooks); err != nil {
			return fmt.Errorf("%s: hooks: %w", path, err)
		}
	}
	lists := map[string][]json.RawMessage{}
	for _, phase := range []string{"prestart", "createRuntime", "poststop"} {
		if h, ok := hooks[phase]; ok && string(h) != "null" {
			var list []json.RawMessage
			if err := json.Unmarshal(h, &list); err != nil {
				return fmt.Errorf("%s: hooks.%s: %w", path, phase, err)
			}
			lists[phase] = list
		}
	}
	changed := false
	// Ours from a manifest (prestart) attach already: add no second one.
	for phase, alsoIn := range map[string]string{"createRuntime": "prestart", "poststop": "poststop"} {
		if hasOurs(lists[phase], self) || hasOurs(lists[alsoIn], self) {
			continue
		}
		ours, _ := json.Marshal(ociHook{Path: self, Args: []string{"kanto-can", "hook", phase}})
		hooks[phase], _ = json.Marshal(append(lists[phase], ours))
		changed = true
	}
	if !changed {
		return nil
	}
	spec["hooks"], _ = json.Marshal(hooks)
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return writeAtomic(path, out)
}

func hasOurs(list []json.RawMessage, self string) bool {
	for _, raw := range list {
		var h ociHook
		if json.Unmarshal(raw, &h) == nil && h.Path == self && len(h.Args) > 1 && h.Args[1] == "hook" {
			return true
		}
	}
	return false
}

// writeAtomic replaces path by data through a rename, keeping its mode.
func writeAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, fi.Mode().Perm())
}
