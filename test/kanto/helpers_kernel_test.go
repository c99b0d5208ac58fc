//go:build kernel

package kanto

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/schematest"
)

const (
	ns       = "kanto-cm"
	imageRef = "docker.io/kanto-can/app:1"
	// A bound, not a sleep: container starts take seconds under emulation.
	wait = 60 * time.Second
)

// env starts containerd (with extra PATH directories first, where a runc
// wrapper would be) and imports the test image: busybox and canapp.
func env(t *testing.T, path ...string) *ctrtest.Containerd {
	t.Helper()
	kerneltest.Require(t)
	opts := []ctrtest.Option{ctrtest.WithSnapshotter("native")}
	if len(path) > 0 {
		opts = append(opts, ctrtest.WithPath(path...))
	}
	c := ctrtest.StartContainerd(t, opts...)
	ctrtest.BuildImage(t, c, ns, imageRef, map[string]string{
		"/bin/busybox": "/bin/busybox",
		"/bin/canapp":  ctrtest.CanappPath(t),
	})
	return c
}

// hooks are kanto-can's hooks as Kanto writes them from a manifest.
func hooks(t *testing.T, extra ...string) ctrtest.Hooks {
	kc := kerneltest.Binary(t)
	return ctrtest.Hooks{
		Prestart: []ctrtest.Hook{{Path: kc, Args: append([]string{"kanto-can", "hook", "prestart"}, extra...)}},
		Poststop: []ctrtest.Hook{{Path: kc, Args: []string{"kanto-can", "hook", "poststop"}}},
	}
}

// wrapperDir returns a directory holding kanto-can installed as "runc".
func wrapperDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Symlink(kerneltest.Binary(t), filepath.Join(dir, "runc")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serve is an entrypoint that fails at once without can0, then echoes
// every frame with id+1.
var serve = []string{"/bin/canapp", "serve", "can0"}

func ls(t *testing.T) []attach.Attachment {
	t.Helper()
	out, errOut, code := kerneltest.Run(t, kerneltest.Binary(t), "ls", "-o", "json")
	if code != 0 {
		t.Fatalf("kanto-can ls: %s", errOut)
	}
	schematest.Validate(t, "docs/cli/ls.schema.json", []byte(out))
	var list []attach.Attachment
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

// oursLeft lists our host ends, the rules naming them and our records
// (enginetest.OursLeft).
func oursLeft(t *testing.T) string { return leftover.Describe(t, record.DefaultDir) }

func requireNothingOfOurs(t *testing.T) { t.Helper(); leftover.RequireNone(t, record.DefaultDir) }

func frame(id uint32, data ...byte) kerneltest.Frame { return kerneltest.Frame{ID: id, Data: data} }

func itoa(i int) string { return strconv.Itoa(i) }
