package ditto

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kanto-can/kanto-can/internal/atomicfile"
)

// memory is what the agent keeps in Config.Memory: the features it
// published for a thing, so that after a restart it deletes on the hub
// those that went while it was away (a bus gone, its last attachment
// detached), which it would otherwise never know it had published.
type memory struct {
	Thing    string   `json:"thing"`
	Features []string `json:"features"`
}

// loadMemory reads path; a missing file is an empty memory.
func loadMemory(path string) (memory, error) {
	var m memory
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return memory{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// writeMemory writes b, a memory as JSON, to path whole or not at all (a
// new file renamed over the old one).
func writeMemory(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}
