package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kanto"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/target"
)

// run runs the command line as main does.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// mustFail runs args and requires a non-zero exit, nothing on stdout and
// one line on stderr that contains want.
func mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, code := run(t, args...)
	msg := strings.TrimSuffix(errOut, "\n")
	switch {
	case code == 0:
		t.Errorf("%s: exit 0 (stdout %q, stderr %q), want an error", strings.Join(args, " "), out, errOut)
	case strings.Contains(msg, "\n"):
		t.Errorf("%s: error of several lines: %q", strings.Join(args, " "), errOut)
	case !strings.Contains(msg, want):
		t.Errorf("%s: error %q does not say %q", strings.Join(args, " "), msg, want)
	case out != "":
		t.Errorf("%s: failed, and printed %q", strings.Join(args, " "), out)
	}
}

// emptyHost points the name lookups at empty directories: no Kanto
// records, no containerd tasks, no attachments.
func emptyHost(t *testing.T) (flags []string) {
	t.Helper()
	saved := recordsDir
	recordsDir = t.TempDir()
	t.Cleanup(func() { recordsDir = saved })
	return []string{"--kanto-meta", t.TempDir(), "--containerd-state", t.TempDir()}
}

func TestUnknownSubcommand(t *testing.T) {
	mustFail(t, `unknown command "bogus" for "kanto-can policy"`, "policy", "bogus")
	mustFail(t, `unknown command "bogus" for "kanto-can"`, "bogus")
	// Without an argument a command that groups others shows its help.
	if out, _, code := run(t, "policy"); code != 0 || !strings.Contains(out, "check") {
		t.Errorf("policy: exit %d, %q", code, out)
	}
}

func TestUnknownContainerIsAnError(t *testing.T) {
	where := emptyHost(t)
	want := "container typo: no such container"
	mustFail(t, want, append([]string{"ls", "typo"}, where...)...)
	mustFail(t, want, append([]string{"detach", "typo"}, where...)...)
	mustFail(t, `container "../x": not a container name or id`, append([]string{"ls", "../x"}, where...)...)
	if entries, _ := os.ReadDir(recordsDir); len(entries) != 0 {
		t.Errorf("a refused detach left %d files in the records' directory", len(entries))
	}
}

// A container is known by its Kanto record, its containerd task, or, once
// both are gone, by the records of what is still attached to it: detach by
// name must find it then.
func TestKnownContainer(t *testing.T) {
	emptyHost(t)
	c := target.Containerd{Namespace: "kanto-cm", StateDir: t.TempDir(), Kanto: kanto.Store{Dir: t.TempDir()}}
	// A Kanto container, by name and by id.
	dir := filepath.Join(c.Kanto.Dir, "3f2a")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"container_id":"3f2a","container_name":"app"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// A containerd task Kanto does not know.
	if err := os.MkdirAll(c.TaskDir("task1"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A container with neither, whose attachment is recorded.
	if err := record.Write(recordsDir, record.Record{HostEnd: "kcan1", Target: "netns:1", Label: "container gone", Container: "gone", Bus: "can0"}); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"app": "3f2a", "3f2a": "3f2a", "task1": "task1", "gone": "gone"} {
		if id, err := knownContainer(c, ref); err != nil || id != want {
			t.Errorf("knownContainer(%s) = %q, %v; want %q", ref, id, err, want)
		}
	}
	for _, ref := range []string{"typo", "kcan1", ""} {
		if id, err := knownContainer(c, ref); err == nil {
			t.Errorf("knownContainer(%q) = %q, want an error", ref, id)
		}
	}
}

func TestBadFlagValues(t *testing.T) {
	mustFail(t, `--pid "abc": not a process id`, "attach", "--pid", "abc", "--bus", "can0")
	mustFail(t, `--pid "abc": not a process id`, "detach", "--pid", "abc")
	mustFail(t, "--all detaches every container: name no container", "detach", "--all", "app")
	mustFail(t, "--all detaches every container: name no container", "detach", "--all", "--bus", "can0")
	if _, errOut, _ := run(t, "attach", "--pid", "abc", "--bus", "can0"); strings.Contains(errOut, "strconv") {
		t.Errorf("the error shows Go's parser: %q", errOut)
	}
}

// detach names what it does: a process on the host's network has nothing
// of ours, and the message must not speak of attaching.
func TestDetachHostNetworkWording(t *testing.T) {
	skipWithoutNSGetNSType(t)
	pid := strconv.Itoa(os.Getpid())
	mustFail(t, "shares the host's network namespace", "detach", "--pid", pid)
	if _, errOut, _ := run(t, "detach", "--pid", pid); strings.Contains(errOut, "nothing to attach") {
		t.Errorf("detach --pid %s: %q", pid, errOut)
	}
}

// skipWithoutNSGetNSType skips where the ioctl that tells a namespace's
// type is not passed on: qemu-user (make unit's arm runs) answers it with
// ENOSYS, which no kernel with vxcan (4.12 on; the ioctl is 4.11's) does.
func skipWithoutNSGetNSType(t *testing.T) {
	t.Helper()
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := unix.IoctlRetInt(int(f.Fd()), 0xb703); errors.Is(err, unix.ENOSYS) {
		t.Skip("NS_GET_NSTYPE is not passed on here (qemu-user)")
	}
}

// No policy file at the default path is no policy, which allows
// everything: check says so and succeeds. A file named must exist.
func TestPolicyCheckWithoutAFile(t *testing.T) {
	saved := defaultConfig
	defaultConfig = filepath.Join(t.TempDir(), "config.json")
	t.Cleanup(func() { defaultConfig = saved })
	out, errOut, code := run(t, "policy", "check")
	if code != 0 || errOut != "" {
		t.Fatalf("policy check without a file: exit %d, stderr %q", code, errOut)
	}
	want := "policy: none (no " + defaultConfig + "): any container may use any bus, both ways, every id, no rate limit\n"
	if out != want {
		t.Errorf("policy check without a file:\n got %q\nwant %q", out, want)
	}
	mustFail(t, "policy: open "+defaultConfig+": no such file", "--config", defaultConfig, "policy", "check")
}

// status --help names every field of its JSON, nested ones too.
func TestStatusHelpNamesEveryJSONField(t *testing.T) {
	out, _, code := run(t, "status", "--help")
	if code != 0 {
		t.Fatalf("status --help: exit %d", code)
	}
	help := strings.Join(strings.Fields(out), " ")
	for _, v := range []any{attach.HostBusStatus{}, attach.BusCounters{}, attach.BusErrors{}} {
		ty := reflect.TypeOf(v)
		for i := 0; i < ty.NumField(); i++ {
			name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" && !regexp.MustCompile(`\b`+name+`\b`).MatchString(help) {
				t.Errorf("status --help does not name %s's JSON field %q", ty.Name(), name)
			}
		}
	}
}

// status and top show containers by their Kanto names, as ls does, from
// the records --kanto-meta names.
func TestKantoMetaFlag(t *testing.T) {
	for _, cmd := range []string{"ls", "status", "top"} {
		c, _, err := NewRoot().Find([]string{cmd})
		if err != nil || c.Flags().Lookup("kanto-meta") == nil {
			t.Errorf("%s has no --kanto-meta (%v)", cmd, err)
		}
	}
}
