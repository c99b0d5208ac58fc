package doccheck

import (
	"crypto/md5"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository's top directory.
const root = "../.."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every directory with Go files under internal/, test/ and cmd/ is named
// in README's layout table (as its path, or as .../NAME under its parent's
// row).
func TestReadmeLayoutNamesEveryPackage(t *testing.T) {
	readme := read(t, "README.md")
	_, layout, _ := strings.Cut(readme, "## Layout")
	layout, _, _ = strings.Cut(layout, "\n## ")
	var rows []string
	for _, line := range strings.Split(layout, "\n") {
		if cell, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.HasPrefix(line, "| `") {
			rows = append(rows, cell)
		}
	}
	named := func(dir string) bool {
		for _, cell := range rows {
			for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
				p := strings.TrimSuffix(m[1], "/")
				if p == dir || strings.HasPrefix(p, ".../") && strings.HasSuffix(dir, p[3:]) {
					return true
				}
			}
		}
		return false
	}
	for _, top := range []string{"internal", "test", "cmd"} {
		filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			dir, _ := filepath.Rel(root, filepath.Dir(path))
			if strings.Contains(dir, "testdata") {
				return nil
			}
			// A package's sub-package (a main of its own, say) is its
			// parent's: test/bench/noop is test/bench's.
			for p := dir; p != "."; p = filepath.Dir(p) {
				if named(p) {
					return nil
				}
			}
			t.Errorf("README's layout does not name %s", dir)
			return filepath.SkipDir
		})
	}
}

// The Yocto recipe declares the project's license, with the checksum of
// its LICENSE file.
func TestYoctoRecipeLicense(t *testing.T) {
	recipe := read(t, "contrib/meta-leda/recipes-connectivity/kanto-can/kanto-can_git.bb")
	sum := md5.Sum([]byte(read(t, "LICENSE")))
	if !strings.Contains(read(t, "README.md"), "## License\n\nApache-2.0") {
		t.Fatal("README does not say the license is Apache-2.0")
	}
	for _, want := range []string{
		`LICENSE = "Apache-2.0"`,
		`LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=` + hex.EncodeToString(sum[:]) + `"`,
	} {
		if !strings.Contains(recipe, "\n"+want+"\n") {
			t.Errorf("the Yocto recipe does not say %s", want)
		}
	}
}
