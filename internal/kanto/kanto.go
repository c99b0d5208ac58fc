// Package kanto reads Eclipse Kanto container-management's own records of
// its containers, so that kanto-can knows a container by the name its user
// gave it in the manifest, not only by its id (a UUID, unless the manifest
// sets container_id).
//
// container-management keeps one directory per container under its home
// (manager.home_dir, /var/lib/container-management by default):
// containers/<id>/config.json holds the whole container as JSON, with the
// id in "container_id", the name in "container_name", the network mode in
// host_config.network_mode and the state (status as a number, pid) in
// "state". The file is written when the container is created and on every
// change of state, before runc runs its hooks, so a prestart hook finds the
// record of the container it runs for. Only the fields read here are
// decoded; the rest of the format may change without concern to us.
package kanto

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is where container-management keeps its container records on
// a device.
const DefaultDir = "/var/lib/container-management/containers"

// ErrNotFound is returned (wrapped) when no record has the id or name.
var ErrNotFound = errors.New("no such Kanto container")

// Store is a directory of container records.
type Store struct {
	Dir string
}

// DefaultStore is Kanto's on a device.
var DefaultStore = Store{Dir: DefaultDir}

// Status is a container's state as Kanto numbers it (state.status).
type Status int

// Kanto's states, in its order (containerm/containers/types/state.go).
const (
	Creating Status = iota
	Created
	Running
	Stopped
	Paused
	Exited
	Dead
	Unknown
)

var statusNames = [...]string{"creating", "created", "running", "stopped", "paused", "exited", "dead", "unknown"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status %d", int(s))
}

// Container is the part of a Kanto container record kanto-can uses.
type Container struct {
	ID         string `json:"container_id"`
	Name       string `json:"container_name"`
	HostConfig *struct {
		NetworkMode string `json:"network_mode"`
	} `json:"host_config"`
	State *struct {
		Pid    int    `json:"pid"`
		Status Status `json:"status"`
	} `json:"state"`
}

// Status returns the container's recorded state (Unknown without one).
func (c Container) Status() Status {
	if c.State == nil {
		return Unknown
	}
	return c.State.Status
}

// HostNetwork reports whether the container shares the host's network
// namespace (network_mode "host").
func (c Container) HostNetwork() bool {
	return c.HostConfig != nil && c.HostConfig.NetworkMode == "host"
}

// Get reads the record of the container with this id.
func (s Store) Get(id string) (Container, error) {
	if !ValidRef(id) {
		return Container{}, fmt.Errorf("%q: %w", id, ErrNotFound)
	}
	c, err := s.read(filepath.Join(s.Dir, id, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Container{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Container{}, err
	}
	if c.ID != id {
		return Container{}, fmt.Errorf("Kanto record %s: container_id is %q", filepath.Join(s.Dir, id, "config.json"), c.ID)
	}
	return c, nil
}

// Find returns the container whose id or, failing that, whose name is ref.
// Kanto keeps names unique; two records with one name is an error.
func (s Store) Find(ref string) (Container, error) {
	if !ValidRef(ref) {
		return Container{}, fmt.Errorf("%q: %w", ref, ErrNotFound)
	}
	if c, err := s.Get(ref); !errors.Is(err, ErrNotFound) {
		return c, err
	}
	all, err := s.List()
	if err != nil {
		return Container{}, err
	}
	var found []Container
	for _, c := range all {
		if c.Name == ref {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return Container{}, fmt.Errorf("%s: %w (no id or name %s in %s)", ref, ErrNotFound, ref, s.Dir)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, c := range found {
		ids[i] = c.ID
	}
	return Container{}, fmt.Errorf("Kanto name %s: several containers have it (%s): give the id", ref, strings.Join(ids, ", "))
}

// List reads every record. A missing directory (Kanto not installed) is
// an empty list; a record that cannot be read is skipped, so that one
// broken file does not hide the others.
func (s Store) List() ([]Container, error) {
	dirs, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("Kanto's container records: %w", err)
	}
	var out []Container
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		c, err := s.read(filepath.Join(s.Dir, d.Name(), "config.json"))
		if err != nil || c.ID != d.Name() {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// Names maps the id of every recorded container to its name.
func (s Store) Names() map[string]string {
	all, _ := s.List()
	names := make(map[string]string, len(all))
	for _, c := range all {
		if c.Name != "" {
			names[c.ID] = c.Name
		}
	}
	return names
}

func (s Store) read(path string) (Container, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Container{}, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return Container{}, fmt.Errorf("Kanto record %s: %w", path, err)
	}
	return c, nil
}

// ValidRef reports whether ref can be a container name or id: one
// directory name (not empty, ".", "..", nor with a slash or NUL).
func ValidRef(ref string) bool {
	return ref != "" && ref != "." && ref != ".." && !strings.ContainsAny(ref, "/\x00")
}
