package main

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The artifacts of this checkout, built once for all the tests here (make
// dist's code path: run with -src and -out).
var (
	distOnce sync.Once
	distDir  string
	distRel  release
	distErr  error
)

func artifacts(t *testing.T) (string, release) {
	t.Helper()
	distOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			distErr = err
			return
		}
		if distRel, distErr = gitRelease(root); distErr != nil {
			return
		}
		distDir, distErr = os.MkdirTemp("", "kanto-can-dist-test.")
		if distErr == nil {
			distErr = run([]string{"-src", root, "-out", distDir}, io.Discard)
		}
	})
	if distErr != nil {
		t.Fatal(distErr)
	}
	return distDir, distRel
}

func TestMain(m *testing.M) {
	code := m.Run()
	if distDir != "" {
		os.RemoveAll(distDir)
	}
	os.Exit(code)
}

func debName(rel release, arch string) string {
	return "kanto-can_" + rel.Version + "_" + arch + ".deb"
}

func cmdOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

// Every artifact, and SHA256SUMS naming each (sha256sum -c agrees).
func TestArtifacts(t *testing.T) {
	dir, rel := artifacts(t)
	var want []string
	for _, tg := range targets {
		want = append(want, "kanto-can-"+rel.Version+"-"+tg.tar+".tar.gz", debName(rel, tg.deb))
	}
	want = append(want, "SHA256SUMS")
	sort.Strings(want)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("artifacts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), ": OK\n") != len(want)-1 {
		t.Fatalf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
}

// A second build of the same commit gives the same bytes, every file.
func TestReproducible(t *testing.T) {
	first, _ := artifacts(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	second := t.TempDir()
	if err := run([]string{"-src", root, "-out", second}, io.Discard); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		a, err := os.ReadFile(filepath.Join(first, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(second, e.Name()))
		if err != nil {
			t.Fatalf("the second build has no %s: %v", e.Name(), err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of one commit", e.Name())
		}
	}
}

// lintian (Debian's) reports no error on any package; warnings and
// overridden tags are logged.
func TestLintian(t *testing.T) {
	dir, rel := artifacts(t)
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatal("lintian is not installed (make setup installs it)")
	}
	// One lintian per package, at once: each takes tens of seconds.
	outs := make([][]byte, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deb := filepath.Join(dir, debName(rel, tg.deb))
			outs[i], _ = exec.Command("lintian", "--tag-display-limit", "0", "--show-overrides", deb).CombinedOutput()
		}()
	}
	wg.Wait()
	for i, tg := range targets {
		// The overridden tags show that lintian looked into the package.
		if !strings.Contains(string(outs[i]), "O: kanto-can: statically-linked-binary") {
			t.Errorf("%s: lintian did not check the package:\n%s", tg.deb, outs[i])
		}
		for _, line := range strings.Split(strings.TrimSpace(string(outs[i])), "\n") {
			switch {
			case strings.HasPrefix(line, "E: "):
				t.Errorf("%s: lintian: %s", tg.deb, line)
			case line != "" && !strings.HasPrefix(line, "N: ") && !strings.Contains(line, "running with root privileges"):
				t.Logf("%s: lintian: %s", tg.deb, line)
			}
		}
	}
}

// The package's files, owners and modes, the conffiles, the control fields
// and the maintainer scripts.
func TestPackageContents(t *testing.T) {
	dir, rel := artifacts(t)
	for _, tg := range targets {
		deb := filepath.Join(dir, debName(rel, tg.deb))
		files := map[string]string{} // path -> mode and owner
		for _, line := range strings.Split(strings.TrimSpace(cmdOutput(t, "dpkg-deb", "-c", deb)), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("%s: dpkg-deb -c: %q", tg.deb, line)
			}
			files[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
		}
		for path, want := range map[string]string{
			"/usr/bin/kanto-can":                                            "-rwxr-xr-x root/root",
			"/usr/bin/kanto-can-daemon":                                     "-rwxr-xr-x root/root",
			"/usr/lib/cni/kanto-can-cni":                                    "-rwxr-xr-x root/root",
			"/lib/systemd/system/kanto-can.service":                         "-rw-r--r-- root/root",
			"/etc/modules-load.d/kanto-can.conf":                            "-rw-r--r-- root/root",
			"/usr/share/containers/oci/hooks.d/kanto-can-prestart.json":     "-rw-r--r-- root/root",
			"/usr/share/containers/oci/hooks.d/kanto-can-poststop.json":     "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/copyright":                            "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/changelog.gz":                         "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/README.md":                            "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/docs/install.md":                      "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/docs/leda.md":                         "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/docs/engines/podman.md":               "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/examples/kanto/can-ubuntu-hooks.json": "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/examples/policy/config.json":          "-rw-r--r-- root/root",
			"/usr/share/doc/kanto-can/examples/docker/daemon.json":          "-rw-r--r-- root/root",
			"/usr/share/lintian/overrides/kanto-can":                        "-rw-r--r-- root/root",
			"/usr/share/man/man1/kanto-can.1.gz":                            "-rw-r--r-- root/root",
			"/usr/share/man/man1/kanto-can-daemon.1.gz":                     "-rw-r--r-- root/root",
		} {
			if got := files[path]; got != want {
				t.Errorf("%s: %s is %q, want %q", tg.deb, path, got, want)
			}
		}
		// Nothing else but directories and documentation; nothing in
		// /usr/local or /opt (the admin's), no developers' page.
		for path, mode := range files {
			switch {
			case strings.HasPrefix(mode, "d"):
				if strings.HasPrefix(path, "/usr/local") || strings.HasPrefix(path, "/opt") {
					t.Errorf("%s: has %s", tg.deb, path)
				}
			case strings.HasPrefix(path, "/usr/share/doc/kanto-can/"):
				if strings.HasSuffix(path, "/testing.md") || strings.HasSuffix(path, "/benchmarks.md") {
					t.Errorf("%s: has the developers' %s", tg.deb, path)
				}
			case strings.HasPrefix(path, "/usr/bin/"), strings.HasPrefix(path, "/usr/lib/cni/"),
				strings.HasPrefix(path, "/lib/systemd/"), strings.HasPrefix(path, "/etc/"),
				strings.HasPrefix(path, "/usr/share/containers/"), strings.HasPrefix(path, "/usr/share/lintian/"),
				strings.HasPrefix(path, "/usr/share/man/man1/"):
			default:
				t.Errorf("%s: unexpected %s", tg.deb, path)
			}
		}

		// Every file in /etc is a conffile, and nothing else is.
		if got, want := cmdOutput(t, "dpkg-deb", "-I", deb, "conffiles"), "/etc/modules-load.d/kanto-can.conf\n"; got != want {
			t.Errorf("%s: conffiles %q, want %q", tg.deb, got, want)
		}

		fields := map[string]string{}
		for _, name := range []string{"Package", "Version", "Architecture", "Maintainer", "Section", "Priority",
			"Depends", "Pre-Depends", "Recommends", "Suggests", "Homepage"} {
			fields[name] = strings.TrimSpace(cmdOutput(t, "dpkg-deb", "-f", deb, name))
		}
		for name, want := range map[string]string{
			"Package": "kanto-can", "Version": rel.Version, "Architecture": tg.deb,
			"Section": "net", "Priority": "optional", "Homepage": homepage,
			// Static binaries need no library; the helpers the scripts
			// call come with Debian's init system.
			"Depends": "", "Pre-Depends": "", "Recommends": "", "Suggests": "can-utils",
		} {
			if fields[name] != want {
				t.Errorf("%s: %s: %q, want %q", tg.deb, name, fields[name], want)
			}
		}
		if !regexp.MustCompile(`^[^<>]+ <[^@<>\s]+@[^@<>\s]+>$`).MatchString(fields["Maintainer"]) {
			t.Errorf("%s: Maintainer %q is not NAME <ADDRESS>", tg.deb, fields["Maintainer"])
		}

		// The maintainer scripts: valid sh, enabling and starting the unit
		// on install, stopping it on removal, forgetting it on purge.
		ctl := t.TempDir()
		cmdOutput(t, "dpkg-deb", "-e", deb, ctl)
		for script, wants := range map[string][]string{
			"postinst": {"deb-systemd-helper enable 'kanto-can.service'", "deb-systemd-invoke $_dh_action 'kanto-can.service'",
				"deb-systemd-invoke restart systemd-modules-load.service"},
			"prerm":  {`[ "$1" = remove ]`, "deb-systemd-invoke stop 'kanto-can.service'", "/usr/bin/kanto-can detach --all"},
			"postrm": {"deb-systemd-helper purge 'kanto-can.service'", `rm -rf "${DPKG_ROOT:-}/run/kanto-can"`},
		} {
			p := filepath.Join(ctl, script)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%s: no %s: %v", tg.deb, script, err)
			}
			if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s: sh -n %s: %v %s", tg.deb, script, err, out)
			}
			for _, w := range wants {
				if !strings.Contains(string(data), w) {
					t.Errorf("%s: %s has no %q", tg.deb, script, w)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(ctl, "preinst")); err == nil {
			t.Errorf("%s: has a preinst", tg.deb)
		}
	}
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armhf": elf.EM_ARM}

// The binaries in each package: the architecture's, static, carrying the
// release's version; every Go module they contain is in the copyright
// file. On this machine's architecture each answers --version.
func TestBinaries(t *testing.T) {
	dir, rel := artifacts(t)
	copyright, err := os.ReadFile("../../deploy/debian/copyright")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		root := t.TempDir()
		cmdOutput(t, "dpkg-deb", "-x", filepath.Join(dir, debName(rel, tg.deb)), root)
		for _, path := range []string{"/usr/bin/kanto-can", "/usr/bin/kanto-can-daemon", "/usr/lib/cni/kanto-can-cni"} {
			bin := filepath.Join(root, path)
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("%s %s: %v", tg.deb, path, err)
			}
			if f.Machine != elfMachine[tg.deb] {
				t.Errorf("%s %s: machine %v, want %v", tg.deb, path, f.Machine, elfMachine[tg.deb])
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s %s: dynamically linked (%v)", tg.deb, path, p.Type)
				}
			}
			f.Close()
			bi, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatalf("%s %s: %v", tg.deb, path, err)
			}
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(rel.Version)) {
				t.Errorf("%s %s: the version %s is not in the binary", tg.deb, path, rel.Version)
			}
			for _, m := range bi.Deps {
				if !regexp.MustCompile(`(?m)^( |Files: )` + regexp.QuoteMeta(m.Path) + `$`).Match(copyright) {
					t.Errorf("%s %s contains the module %s, which deploy/debian/copyright does not name", tg.deb, path, m.Path)
				}
			}
			if tg.goarch == hostArch() {
				out := cmdOutput(t, bin, "--version")
				if want := filepath.Base(path) + " version " + rel.Version + "\n"; out != want {
					t.Errorf("%s --version: %q, want %q", path, out, want)
				}
			}
			if tg.goarch == hostArch() && path != "/usr/lib/cni/kanto-can-cni" {
				checkManPage(t, bin, filepath.Join(root, "usr/share/man/man1", filepath.Base(path)+".1.gz"))
			}
		}
	}
}

func hostArch() string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// The tarball: one directory, the binaries and what installing by hand
// needs, owned by root, dated at the commit.
func TestTarball(t *testing.T) {
	dir, rel := artifacts(t)
	for _, tg := range targets {
		name := "kanto-can-" + rel.Version + "-" + tg.tar
		tarList := exec.Command("tar", "--numeric-owner", "-tvzf", filepath.Join(dir, name+".tar.gz"))
		tarList.Env = append(os.Environ(), "TZ=UTC")
		out, err := tarList.Output()
		if err != nil {
			t.Fatalf("tar -tvzf %s.tar.gz: %v", name, err)
		}
		list := string(out)
		date := rel.Time.Format("2006-01-02 15:04")
		for _, want := range []struct{ mode, path string }{
			{"-rwxr-xr-x", "kanto-can"},
			{"-rwxr-xr-x", "kanto-can-daemon"},
			{"-rwxr-xr-x", "kanto-can-cni"},
			{"-rw-r--r--", "LICENSE"},
			{"-rw-r--r--", "docs/install.md"},
			{"-rw-r--r--", "deploy/kanto-can.service"},
			{"-rw-r--r--", "deploy/modules-load.d/kanto-can.conf"},
		} {
			re := `(?m)^` + regexp.QuoteMeta(want.mode+" 0/0") + ` +\d+ ` + regexp.QuoteMeta(date+" "+name+"/"+want.path) + `$`
			if !regexp.MustCompile(re).MatchString(list) {
				t.Errorf("%s.tar.gz: no %s %s owned by 0/0 dated %s in\n%s", name, want.mode, want.path, date, list)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if f := strings.Fields(line); len(f) < 6 || !strings.HasPrefix(f[5], name+"/") {
				t.Errorf("%s.tar.gz: %q is outside %s/", name, line, name)
			}
		}
	}
}

// The amd64 package installed, removed and purged with dpkg in a root of
// its own, its maintainer scripts run outside a chroot (DPKG_ROOT set)
// with systemd's helpers replaced by stand-ins that record their calls:
// the files land, the unit is enabled, the records go on purge, nothing of
// the package is left.
func TestDpkgInstallRemovePurge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root")
	}
	dir, rel := artifacts(t)
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "run/kanto-can"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stubs, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	for _, name := range []string{"deb-systemd-helper", "deb-systemd-invoke", "systemctl"} {
		script := "#!/bin/sh\necho \"" + name + " $*\" >>" + calls + "\n"
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
	}
	called := func() string {
		data, _ := os.ReadFile(calls)
		os.Remove(calls)
		return string(data)
	}
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(root, p)); return err == nil }

	dpkg("-i", filepath.Join(dir, debName(rel, "amd64")))
	for _, p := range []string{"usr/bin/kanto-can", "usr/bin/kanto-can-daemon", "usr/lib/cni/kanto-can-cni",
		"lib/systemd/system/kanto-can.service", "etc/modules-load.d/kanto-can.conf"} {
		if !exists(p) {
			t.Errorf("installed: no %s", p)
		}
	}
	if got := called(); !strings.Contains(got, "deb-systemd-helper enable kanto-can.service") {
		t.Errorf("installed: the unit was not enabled; calls:\n%s", got)
	}

	dpkg("-r", "kanto-can")
	if exists("usr/bin/kanto-can") || exists("lib/systemd/system/kanto-can.service") {
		t.Error("removed: files left")
	}
	if !exists("etc/modules-load.d/kanto-can.conf") {
		t.Error("removed: the conffile went before the purge")
	}
	called()

	if err := os.WriteFile(filepath.Join(root, "run/kanto-can/record"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg("--purge", "kanto-can")
	if got := called(); !strings.Contains(got, "deb-systemd-helper purge kanto-can.service") {
		t.Errorf("purged: the unit's state was not purged; calls:\n%s", got)
	}
	for _, p := range []string{"etc/modules-load.d/kanto-can.conf", "run/kanto-can", "usr/share/doc/kanto-can"} {
		if exists(p) {
			t.Errorf("purged: %s left", p)
		}
	}
}

// The manual page names every command and option --help lists, so that it
// does not fall behind the binary.
func checkManPage(t *testing.T, bin, page string) {
	t.Helper()
	help := cmdOutput(t, bin, "--help")
	cmd := exec.Command("man", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=200", "MAN_KEEP_FORMATTING=", "LC_ALL=C.UTF-8")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l %s: %v", page, err)
	}
	// The words as a reader sees them: no overstrike, no line breaks.
	text := strings.Join(strings.Fields(regexp.MustCompile(".\x08").ReplaceAllString(string(out), "")), " ")
	var names []string
	section := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			section = line
		case section == "Available Commands:" && strings.HasPrefix(line, "  "):
			names = append(names, strings.Fields(line)[0])
		case section == "Flags:" && strings.HasPrefix(line, " "):
			if m := regexp.MustCompile(`--[a-z-]+`).FindString(line); m != "" && m != "--help" {
				names = append(names, m)
			}
		}
	}
	if len(names) < 2 {
		t.Fatalf("%s --help: found %v, not its commands and flags:\n%s", bin, names, help)
	}
	for _, n := range names {
		if !regexp.MustCompile(`(^|[\s(,])` + regexp.QuoteMeta(n) + `([\s),.]|$)`).MatchString(text) {
			t.Errorf("%s: the manual page does not name %s", filepath.Base(page), n)
		}
	}
}
