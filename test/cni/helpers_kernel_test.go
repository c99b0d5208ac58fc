//go:build kernel

package cni

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/internal/kerneltest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/enginetest"
	"github.com/kanto-can/kanto-can/internal/kerneltest/leftover"
	"github.com/kanto-can/kanto-can/nl"
)

// runtime is libcni over the test's bin dir (returned too), with a cache
// of its own.
func runtime(t *testing.T) (*libcni.CNIConfig, string) {
	dir := enginetest.CNIBinDir(t)
	return libcni.NewCNIConfigWithCacheDir([]string{dir}, t.TempDir(), nil), dir
}

// addPlugin runs one plugin of a list as the runtime would within the
// list: ADD with the list's name and version and prevResult. (libcni's
// AddNetworkList would run the whole list again, and host-local refuses
// a second allocation for a container.)
func addPlugin(t *testing.T, dir string, list *libcni.NetworkConfigList, i int, prev types.Result, rt *libcni.RuntimeConf) (types.Result, error) {
	t.Helper()
	var conf map[string]any
	if err := json.Unmarshal(list.Plugins[i].Bytes, &conf); err != nil {
		t.Fatal(err)
	}
	conf["name"], conf["cniVersion"] = list.Name, list.CNIVersion
	pb, err := json.Marshal(prev)
	if err != nil {
		t.Fatal(err)
	}
	var pm map[string]any
	if err := json.Unmarshal(pb, &pm); err != nil {
		t.Fatal(err)
	}
	conf["prevResult"] = pm
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return invoke.ExecPluginWithResult(ctx(t), filepath.Join(dir, list.Plugins[i].Network.Type), stdin,
		&invoke.Args{Command: "ADD", ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName, PluginArgs: rt.Args, Path: dir}, nil)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// cniError returns err as the plugin's CNI error, failing the test if it
// is not one.
func cniError(t *testing.T, err error) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("want a CNI error, got %T %v", err, err)
	}
	return e
}

func requireNothingOfOurs(t *testing.T, records string) {
	t.Helper()
	leftover.RequireNone(t, records)
}

// insideLinks returns the CAN links in a namespace by name.
func insideLinks(t *testing.T, ns *kerneltest.NS) map[string]canlink.Link {
	t.Helper()
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := canlink.DialConfig(nl.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ls, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]canlink.Link{}
	for _, l := range ls {
		out[l.Name] = l
	}
	return out
}

// listed reports whether `kanto-can ls -o json` shows an attachment with
// this label and container id.
func listed(t *testing.T, label, container string) bool {
	t.Helper()
	out := kerneltest.MustRun(t, kerneltest.Binary(t), "ls", "-o", "json")
	var as []struct {
		Label     string `json:"label"`
		Container string `json:"container"`
	}
	if err := json.Unmarshal([]byte(out), &as); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	for _, a := range as {
		if a.Label == label && a.Container == container {
			return true
		}
	}
	t.Logf("ls -o json:\n%s", out)
	return false
}

// waitFile waits until path contains substr, on inotify events of its
// directory (the file may not exist yet), bounded by timeout.
func waitFile(t *testing.T, path, substr string, timeout time.Duration) string {
	t.Helper()
	var b []byte
	err := kerneltest.AwaitFiles(timeout, nil, func(add func(string, uint32)) {
		add(filepath.Dir(path), unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
	}, func() bool {
		b, _ = os.ReadFile(path)
		return strings.Contains(string(b), substr)
	})
	if err != nil {
		t.Fatalf("no %q in %s: %v; it has:\n%s", substr, path, err, b)
	}
	return string(b)
}

// exchange sends the ECU's frames and expects canapp's answers (id+1).
func exchange(t *testing.T, ecu string) {
	t.Helper()
	e := kerneltest.Open(t, nil, ecu)
	defer e.Close()
	for _, f := range []kerneltest.Frame{{ID: 0x123, Data: []byte{0xCA, 0xFE}}, {ID: 0x7DF, Data: []byte{2, 1, 0}}} {
		e.Send(t, f)
		want := f
		want.ID++
		e.Expect(t, []kerneltest.Frame{want}, 10*time.Second)
	}
}
