package target

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Containerd says where containerd and Kanto keep what resolves a container
// name or id to its process.
type Containerd struct {
	Namespace string // containerd namespace; Kanto's is "kanto-cm"
	StateDir  string // containerd's state directory, /run/containerd
	// KantoMetaDir holds Kanto container-management's container records,
	// one directory per id with a config.json that has "id" and "name".
	KantoMetaDir string
}

// DefaultContainerd is Kanto on Leda.
var DefaultContainerd = Containerd{
	Namespace:    "kanto-cm",
	StateDir:     "/run/containerd",
	KantoMetaDir: "/var/lib/container-management/containers",
}

// TaskDir is containerd's bundle directory of a running container's task
// (runtime v2): it holds config.json (the OCI spec) and init.pid.
func (c Containerd) TaskDir(id string) string {
	return filepath.Join(c.StateDir, "io.containerd.runtime.v2.task", c.Namespace, id)
}

// FromContainer opens the network namespace of a running container given
// by id or, failing that, by Kanto name.
func FromContainer(c Containerd, ref string) (*Target, error) {
	if ref == "" || strings.ContainsAny(ref, "/\x00") || ref == "." || ref == ".." {
		return nil, fmt.Errorf("container %q: not a container name or id", ref)
	}
	id := ref
	pid, err := c.taskPID(id)
	if errors.Is(err, os.ErrNotExist) {
		if byName, ok := c.kantoID(ref); ok {
			id = byName
			pid, err = c.taskPID(id)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: not running in containerd namespace %s (no task in %s)", ref, c.Namespace, filepath.Dir(c.TaskDir(id)))
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	t, err := FromPID(pid)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	t.Label, t.Container = "container "+ref, id
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

// kantoID finds a container id by its Kanto name.
func (c Containerd) kantoID(name string) (string, bool) {
	dirs, err := os.ReadDir(c.KantoMetaDir)
	if err != nil {
		return "", false
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(c.KantoMetaDir, d.Name(), "config.json"))
		if err != nil {
			continue
		}
		var rec struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		if json.Unmarshal(b, &rec) == nil && rec.Name == name && rec.ID != "" {
			return rec.ID, true
		}
	}
	return "", false
}

// ContainerID returns the id of a container given by id or Kanto name,
// running or not: ref itself unless it is the name of a Kanto record.
func (c Containerd) ContainerID(ref string) string {
	if _, err := os.Stat(c.TaskDir(ref)); err == nil {
		return ref
	}
	if id, ok := c.kantoID(ref); ok {
		return id
	}
	return ref
}

// KantoName returns the Kanto name of a container id, if Kanto has a record
// of it.
func (c Containerd) KantoName(id string) string {
	b, err := os.ReadFile(filepath.Join(c.KantoMetaDir, id, "config.json"))
	if err != nil {
		return ""
	}
	var rec struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(b, &rec) != nil {
		return ""
	}
	return rec.Name
}
