// Package record keeps what was granted for each attachment, one file per
// host end under /run/kanto-can, so that what the kernel forgets can be
// put back: when a bus goes away the kernel deletes every gateway rule
// naming it, and when it comes back (a replugged adapter, a reloaded driver)
// only the records say which rules it had.
//
// Files are written to a temporary name and renamed, so concurrent writers
// (hooks of containers starting at the same time) never leave a torn or
// mixed record; each attachment has its own file.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanto-can/kanto-can/internal/atomicfile"
	"github.com/kanto-can/kanto-can/internal/request"
)

// DefaultDir is where records live: a tmpfs, gone at reboot like the
// attachments themselves.
const DefaultDir = "/run/kanto-can"

// Record is one attachment's grant.
type Record struct {
	HostEnd   string `json:"host_end"`
	Target    string `json:"target"`
	Label     string `json:"label"`
	Container string `json:"container,omitempty"`
	// PID is the container's init process when the attachment was made:
	// once it is gone, so is the container, even if its namespace lives on.
	PID     int    `json:"pid,omitempty"`
	Started uint64 `json:"started,omitempty"` // PID's start time (target.ProcessStart)
	// EndsWithTask: the container (a pod sandbox) is gone when containerd
	// reports its task's exit or delete (no PID was known at attach time).
	EndsWithTask bool          `json:"ends_with_task,omitempty"`
	Bus          string        `json:"bus"` // the resolved bus, in --bus notation
	TxRate       *request.Rate `json:"tx_rate,omitempty"`
	Virtual      bool          `json:"virtual,omitempty"`
	// Bridge is set when kanto-can-daemon carries the frames (no vxcan
	// pair: HostEnd only names the record).
	Bridge *Bridge `json:"bridge,omitempty"`
}

// Bridge is what the daemon needs to bridge an attachment again after it
// restarted.
type Bridge struct {
	NetNS string `json:"netns"` // a path to the container's network namespace
	FD    bool   `json:"fd"`    // the container's vcan carries CAN FD
}

// Request returns the recorded grant as a bus request.
func (r Record) Request() (request.Bus, error) {
	b, err := request.ParseBus(r.Bus)
	if err != nil {
		return b, fmt.Errorf("record %s: %w", r.HostEnd, err)
	}
	b.TxRate, b.Virtual = r.TxRate, r.Virtual
	return b, nil
}

func path(dir, hostEnd string) string { return filepath.Join(dir, hostEnd+".json") }

// Write stores r atomically.
func Write(dir string, r Record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	// A reconcile re-records every attachment: leave unchanged ones alone.
	if old, err := os.ReadFile(path(dir, r.HostEnd)); err == nil && bytes.Equal(old, b) {
		return nil
	}
	// Readable by anyone, as the same facts are in the kernel (the host
	// end's alias): ls and top as a user list bridged attachments from
	// their records.
	if err := atomicfile.Write(path(dir, r.HostEnd), b, 0o644); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	return nil
}

// Remove deletes the record of a host end; a missing record is fine.
func Remove(dir, hostEnd string) error {
	if err := os.Remove(path(dir, hostEnd)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("records: %w", err)
	}
	return nil
}

// Get returns the record of a host end; false when there is none.
func Get(dir, hostEnd string) (Record, bool, error) {
	r, err := read(dir, hostEnd+".json")
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	return r, err == nil, err
}

// read decodes the record file name in dir.
func read(dir, name string) (Record, error) {
	var r Record
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return r, fmt.Errorf("records: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("records: %s: %w", name, err)
	}
	return r, nil
}

// List returns every record in dir (none when dir does not exist).
func List(dir string) ([]Record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	var out []Record
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		r, err := read(dir, name)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// DittoMemory, in the records' directory, is where kanto-can-daemon
// --ditto remembers which features it published, across its restarts.
const DittoMemory = "ditto-features"

// HoldFile, in the records' directory, holds every new attachment while it
// exists; its first line says why. The package's removal writes it before
// it detaches every container (deploy/debian/prerm), so that a container
// restarted in between is not attached again by a hook whose binary is
// about to go.
const HoldFile = "hold"

// Held returns the reason in dir's hold file, and whether there is one.
func Held(dir string) (reason string, held bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, HoldFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	reason, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	if reason == "" {
		reason = "held by " + filepath.Join(dir, HoldFile)
	}
	return reason, true, nil
}
