package kanto

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// running.json is a record written by Kanto container-management itself
// (a container created with kanto-cm create -f examples/kanto/
// can-ubuntu-hooks.json and started), captured in the test guest.
const realID = "fd780293-9cb5-41ee-b180-a9bc30ff8b26"

// store builds a record directory: the captured record, plus records made
// from it with other ids, names, states and network modes.
func store(t *testing.T, extra map[string]string) Store {
	t.Helper()
	real, err := os.ReadFile(filepath.Join("testdata", "running.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	put := func(id, body string) {
		if err := os.MkdirAll(filepath.Join(dir, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id, "config.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put(realID, string(real))
	for id, body := range extra {
		put(id, body)
	}
	return Store{Dir: dir}
}

func TestReadsKantosOwnRecord(t *testing.T) {
	s := store(t, nil)
	c, err := s.Get(realID)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != realID || c.Name != "can-ubuntu" || c.Status() != Running || c.State.Pid != 242 || c.HostNetwork() {
		t.Fatalf("decoded %+v (state %+v)", c, c.State)
	}
	if c.Status().String() != "running" {
		t.Errorf("status %q", c.Status())
	}
}

func TestFindByNameOrID(t *testing.T) {
	s := store(t, map[string]string{
		"web-id":  `{"container_id":"web-id","container_name":"web","host_config":{"network_mode":"host"},"state":{"status":3}}`,
		"dup-1":   `{"container_id":"dup-1","container_name":"twin"}`,
		"dup-2":   `{"container_id":"dup-2","container_name":"twin"}`,
		"broken":  `{"container_id":`,
		"moved":   `{"container_id":"elsewhere","container_name":"moved"}`,
		"no-name": `{"container_id":"no-name"}`,
	})
	for ref, want := range map[string]string{"can-ubuntu": realID, realID: realID, "web": "web-id", "web-id": "web-id"} {
		c, err := s.Find(ref)
		if err != nil || c.ID != want {
			t.Errorf("Find(%s) = %+v, %v; want id %s", ref, c, err, want)
		}
	}
	if c, _ := s.Find("web"); !c.HostNetwork() || c.Status() != Stopped {
		t.Errorf("web: host network %v, status %s", c.HostNetwork(), c.Status())
	}
	for ref, want := range map[string]string{
		"nosuch":     "nosuch: no such Kanto container (no id or name nosuch in ",
		"twin":       "Kanto name twin: several containers have it (dup-1, dup-2): give the id",
		"broken":     "Kanto record " + filepath.Join(s.Dir, "broken", "config.json") + ": unexpected end of JSON input",
		"moved":      "Kanto record " + filepath.Join(s.Dir, "moved", "config.json") + `: container_id is "elsewhere"`,
		"../escape":  "no such Kanto container",
		"":           "no such Kanto container",
		"a\x00b":     "no such Kanto container",
		"..":         "no such Kanto container",
		"elsewhere ": "no such Kanto container",
	} {
		_, err := s.Find(ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Find(%q): %v, want an error with %q", ref, err, want)
		}
	}
	if _, err := s.Find("nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown name: %v is not ErrNotFound", err)
	}
	// A broken record hides nothing else; names cover every readable one.
	want := map[string]string{realID: "can-ubuntu", "web-id": "web", "dup-1": "twin", "dup-2": "twin"}
	if got := s.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

// Without Kanto (no record directory) nothing is found and nothing fails.
func TestNoKanto(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "absent")}
	if _, err := s.Find("app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find: %v", err)
	}
	if n := s.Names(); len(n) != 0 {
		t.Errorf("Names: %v", n)
	}
}
