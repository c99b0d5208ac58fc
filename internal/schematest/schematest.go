// Package schematest checks JSON against the JSON Schemas under docs/, for
// tests on the host and in the guest: the documented schema is the one
// the output is held to.
package schematest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Check validates data against the schema at path (from the module's root,
// e.g. "docs/cli/ls.schema.json") and returns why it does not hold.
func Check(tb testing.TB, path string, data []byte) error {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(filepath.Join(root, filepath.FromSlash(path)))
	if err != nil {
		tb.Fatalf("schema %s: %v", path, err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(data)))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// Validate fails the test unless data holds to the schema at path.
func Validate(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := Check(tb, path, data); err != nil {
		tb.Errorf("%s does not hold: %v\n%s", path, err, data)
	}
}

// moduleRoot is the first directory up from the test's own (its package's)
// that has go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("schematest: no go.mod above the test's directory")
		}
		dir = up
	}
}
