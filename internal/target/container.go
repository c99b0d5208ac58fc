package target

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kanto-can/kanto-can/internal/kanto"
)

// Containerd says where containerd and Kanto keep what resolves a container
// name or id to its process.
type Containerd struct {
	Namespace string // containerd namespace; Kanto's is "kanto-cm"
	StateDir  string // containerd's state directory, /run/containerd
	// Kanto holds Kanto container-management's container records, which
	// know containers by name.
	Kanto kanto.Store
}

// DefaultContainerd is Kanto on Leda.
var DefaultContainerd = Containerd{
	Namespace: "kanto-cm",
	StateDir:  "/run/containerd",
	Kanto:     kanto.DefaultStore,
}

// TaskDir is containerd's bundle directory of a running container's task
// (runtime v2): it holds config.json (the OCI spec) and init.pid.
func (c Containerd) TaskDir(id string) string {
	return filepath.Join(c.StateDir, "io.containerd.runtime.v2.task", c.Namespace, id)
}

// FromContainer opens the network namespace of a running container given
// by its Kanto name or id, or by the id of a task in the containerd
// namespace. The errors say why a container cannot be attached: unknown,
// not running (with Kanto's state), on the host's network.
func FromContainer(c Containerd, ref string) (*Target, error) {
	if !kanto.ValidRef(ref) {
		return nil, fmt.Errorf("container %q: not a container name or id", ref)
	}
	id, label := ref, "container "+ref
	rec, kerr := c.Kanto.Find(ref)
	switch {
	case kerr == nil:
		id, label = rec.ID, "container "+rec.Name
		if rec.HostNetwork() {
			return nil, fmt.Errorf("%s uses the host's network (network_mode host): it sees the host's CAN interfaces already, kanto-can attaches and detaches nothing there", label)
		}
	case !errors.Is(kerr, kanto.ErrNotFound):
		return nil, fmt.Errorf("container %s: %w", ref, kerr)
	}
	pid, err := c.taskPID(id)
	switch {
	case errors.Is(err, os.ErrNotExist) && kerr == nil && rec.Status() == kanto.Running:
		return nil, fmt.Errorf("%s: Kanto says it runs, but containerd has no task %s in %s (check --namespace and --containerd-state)", label, id, filepath.Dir(c.TaskDir(id)))
	case errors.Is(err, os.ErrNotExist) && kerr == nil:
		return nil, fmt.Errorf("%s is %s, not running: start it first (kanto-cm start -n %s)", label, rec.Status(), rec.Name)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("container %s: no such container: no Kanto container has this name or id (%s), and containerd namespace %s has no running task %s", ref, c.Kanto.Dir, c.Namespace, ref)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	t, err := FromPID(pid)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	t.Label, t.Container = label, id
	return t, nil
}

// taskPID reads the pid containerd's shim recorded for the task.
func (c Containerd) taskPID(id string) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.TaskDir(id), "init.pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("init.pid: %w", err)
	}
	return pid, nil
}

// ContainerID returns the id of a container given by Kanto name or id,
// running or not: ref itself unless Kanto knows it by that name.
func (c Containerd) ContainerID(ref string) string {
	if rec, err := c.Kanto.Find(ref); err == nil {
		return rec.ID
	}
	return ref
}

// Names returns what the container with this id is known by, for the
// policy and for messages: its Kanto name first, when Kanto has a record of
// it, then its id.
func (c Containerd) Names(id string) []string {
	if id == "" {
		return nil
	}
	if rec, err := c.Kanto.Get(id); err == nil && rec.Name != "" && rec.Name != id {
		return []string{rec.Name, id}
	}
	return []string{id}
}
