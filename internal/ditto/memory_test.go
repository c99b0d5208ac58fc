package ditto

import (
	"os"
	"path/filepath"
	"testing"
)

// A memory that cannot be written (here: its path is a directory) leaves
// nothing beside it.
func TestWriteMemoryFailsWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ditto-features")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeMemory(path, []byte(`{}`)); err == nil {
		t.Fatal("want an error")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left beside the memory: %v", ents)
	}
}
