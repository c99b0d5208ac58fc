package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// A target is one architecture: Go's name for it and Debian's.
type target struct {
	goarch, goarm string
	deb           string // Debian's architecture
	tar           string // the tarball's name for it
}

var targets = []target{
	{goarch: "amd64", deb: "amd64", tar: "linux-amd64"},
	{goarch: "arm64", deb: "arm64", tar: "linux-arm64"},
	// ARMv7 with hardware floating point: Debian's armhf, Raspberry Pi OS's
	// 32-bit userland.
	{goarch: "arm", goarm: "7", deb: "armhf", tar: "linux-armv7"},
}

// selectTargets is the targets named in list (Debian's architecture names,
// comma-separated), in their order; all of them for "".
func selectTargets(list string) ([]target, error) {
	if list == "" {
		return targets, nil
	}
	var out []target
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(targets, func(t target) bool { return t.deb == name })
		if i < 0 {
			var known []string
			for _, t := range targets {
				known = append(known, t.deb)
			}
			return nil, fmt.Errorf("-arch: unknown architecture %q (known: %s)", name, strings.Join(known, ", "))
		}
		if !slices.ContainsFunc(out, func(t target) bool { return t.deb == name }) {
			out = append(out, targets[i])
		}
	}
	return out, nil
}

// The binaries, by command directory; all three go in each artifact.
var binaries = []string{"kanto-can", "kanto-can-daemon", "kanto-can-cni"}

const (
	homepage   = "https://github.com/kanto-can/kanto-can"
	maintainer = "kanto-can developers <kanto-can@users.noreply.github.com>"
	// The first line is the synopsis (lintian: short, no full stop).
	description = `CAN interfaces for unprivileged containers (Eclipse Kanto and others)
kanto-can gives a container its own SocketCAN interface, wired to a host
CAN bus through a vxcan pair and the kernel's CAN gateway, without making
the container privileged: per-container receive and transmit id filters,
direction, CAN FD, transmit rate limits, and an admin policy of which
container may use which bus.
.
Containers of Eclipse Kanto container-management ask for CAN with
KANTO_CAN in their manifest and OCI hooks naming /usr/bin/kanto-can;
rootful podman with an annotation (hooks installed); Docker with kanto-can
as a runtime, Kubernetes with the CNI plugin kanto-can-cni (both opt-in).
The kanto-can service (kanto-can-daemon) restores routes when a bus
returns and cleans up after containers that are gone.`
)

// build writes every artifact of rel into out (emptied first) and returns
// their names.
func build(root, out string, rel release, targets []target) ([]string, error) {
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kanto-can-dist.")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	var names []string
	for _, t := range targets {
		bin := filepath.Join(work, t.deb)
		if err := goBuild(root, bin, t, rel); err != nil {
			return nil, err
		}
		tgz := fmt.Sprintf("kanto-can-%s-%s.tar.gz", rel.Version, t.tar)
		if err := writeTarball(filepath.Join(out, tgz), root, bin, t, rel); err != nil {
			return nil, fmt.Errorf("%s: %w", tgz, err)
		}
		name, err := writeDeb(out, root, bin, work, t, rel)
		if err != nil {
			return nil, fmt.Errorf("%s package: %w", t.deb, err)
		}
		names = append(names, tgz, name)
	}
	sort.Strings(names)
	if err := writeSums(out, names); err != nil {
		return nil, err
	}
	return append(names, "SHA256SUMS"), nil
}

// goBuild builds the three static binaries for t into dir. Nothing of this
// machine or this run gets into them: -trimpath drops the paths, -buildid=
// the build id, -buildvcs=false the checkout's state (the version says
// which commit); the Go settings that change code are set, not inherited.
func goBuild(root, dir string, t target, rel release) error {
	args := []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X github.com/kanto-can/kanto-can/internal/version.built=" + rel.Version,
		"-o", dir + "/"}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(without(os.Environ(), "GOFLAGS", "GOOS", "GOARCH", "GOARM", "GOAMD64", "GOARM64", "CGO_ENABLED", "GOEXPERIMENT"),
		"CGO_ENABLED=0", "GOFLAGS=", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm, "GOAMD64=v1", "GOARM64=v8.0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", t.tar, err)
	}
	return nil
}

func without(env []string, names ...string) []string {
	var kept []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		kept = append(kept, kv)
	}
	return kept
}

// A file of an artifact: where it comes from, where it goes, its mode.
type file struct {
	src, dst string
	mode     fs.FileMode
}

// The tarball: the binaries, and what installing them by hand needs
// (docs/install.md: the unit, the modules, the engines' files).
func tarballFiles(root, bin string) []file {
	fl := []file{
		{filepath.Join(root, "LICENSE"), "LICENSE", 0o644},
		{filepath.Join(root, "README.md"), "README.md", 0o644},
		{filepath.Join(root, "docs/install.md"), "docs/install.md", 0o644},
		{filepath.Join(root, "deploy/kanto-can.service"), "deploy/kanto-can.service", 0o644},
		{filepath.Join(root, "deploy/modules-load.d/kanto-can.conf"), "deploy/modules-load.d/kanto-can.conf", 0o644},
		{filepath.Join(root, "deploy/podman/kanto-can-prestart.json"), "deploy/podman/kanto-can-prestart.json", 0o644},
		{filepath.Join(root, "deploy/podman/kanto-can-poststop.json"), "deploy/podman/kanto-can-poststop.json", 0o644},
		{filepath.Join(root, "deploy/docker/daemon.json"), "deploy/docker/daemon.json", 0o644},
	}
	for _, b := range binaries {
		fl = append(fl, file{filepath.Join(bin, b), b, 0o755})
	}
	return fl
}

// writeTarball writes the files under one directory named like the
// tarball, owned by root, every time the commit's.
func writeTarball(path, root, bin string, t target, rel release) error {
	prefix := fmt.Sprintf("kanto-can-%s-%s/", rel.Version, t.tar)
	fl := tarballFiles(root, bin)
	sort.Slice(fl, func(i, j int) bool { return fl[i].dst < fl[j].dst })
	var buf bytes.Buffer
	// No name and no time in the gzip header: same input, same bytes.
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode fs.FileMode, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: int64(mode), Typeflag: typ, Size: size,
			Uname: "root", Gname: "root", ModTime: rel.Time, Format: tar.FormatPAX}
	}
	dirs := map[string]bool{}
	for _, f := range fl {
		// Parent directories first, each once.
		full := prefix + f.dst
		for i := range len(full) {
			if d := full[:i+1]; full[i] == '/' && !dirs[d] {
				if err := tw.WriteHeader(hdr(d, 0o755, tar.TypeDir, 0)); err != nil {
					return err
				}
				dirs[d] = true
			}
		}
		data, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr(prefix+f.dst, f.mode, tar.TypeReg, int64(len(data)))); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// The package's files. The binaries where manifests, hooks.d entries and
// the unit name them; the CNI plugin in Debian's CNI directory (a binary
// there does nothing until a network configuration names it); the unit
// where Debian 12's debhelper puts units; the module list in /etc, a
// conffile the admin may edit; podman's hooks in the directory podman
// reads and packages own. What stays opt-in (the runc link, Docker's
// runtime, /opt/cni/bin) is in the documentation: docs/install.md.
func packageFiles(root, bin, work string) ([]file, error) {
	fl := []file{
		{filepath.Join(bin, "kanto-can"), "/usr/bin/kanto-can", 0o755},
		{filepath.Join(bin, "kanto-can-daemon"), "/usr/bin/kanto-can-daemon", 0o755},
		{filepath.Join(bin, "kanto-can-cni"), "/usr/lib/cni/kanto-can-cni", 0o755},
		{filepath.Join(root, "deploy/kanto-can.service"), "/lib/systemd/system/kanto-can.service", 0o644},
		{filepath.Join(root, "deploy/modules-load.d/kanto-can.conf"), "/etc/modules-load.d/kanto-can.conf", 0o644},
		{filepath.Join(root, "deploy/podman/kanto-can-prestart.json"), "/usr/share/containers/oci/hooks.d/kanto-can-prestart.json", 0o644},
		{filepath.Join(root, "deploy/podman/kanto-can-poststop.json"), "/usr/share/containers/oci/hooks.d/kanto-can-poststop.json", 0o644},
		{filepath.Join(root, "deploy/debian/copyright"), "/usr/share/doc/kanto-can/copyright", 0o644},
		{filepath.Join(root, "deploy/debian/lintian-overrides"), "/usr/share/lintian/overrides/kanto-can", 0o644},
		{filepath.Join(work, "changelog.gz"), "/usr/share/doc/kanto-can/changelog.gz", 0o644},
		{filepath.Join(root, "README.md"), "/usr/share/doc/kanto-can/README.md", 0o644},
		{filepath.Join(work, "kanto-can.1.gz"), "/usr/share/man/man1/kanto-can.1.gz", 0o644},
		{filepath.Join(work, "kanto-can-daemon.1.gz"), "/usr/share/man/man1/kanto-can-daemon.1.gz", 0o644},
		{filepath.Join(root, "deploy/docker/daemon.json"), "/usr/share/doc/kanto-can/examples/docker/daemon.json", 0o644},
	}
	// The documentation, and the examples as the README links them. Not
	// the developers' pages (how the project is tested and measured).
	for _, tree := range []struct{ src, dst string }{
		{"docs", "/usr/share/doc/kanto-can/docs"},
		{"examples/kanto", "/usr/share/doc/kanto-can/examples/kanto"},
		{"examples/policy", "/usr/share/doc/kanto-can/examples/policy"},
	} {
		err := filepath.WalkDir(filepath.Join(root, tree.src), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if ext := filepath.Ext(p); ext != ".md" && ext != ".json" || developersOnly[d.Name()] {
				return nil
			}
			rel, err := filepath.Rel(filepath.Join(root, tree.src), p)
			if err != nil {
				return err
			}
			fl = append(fl, file{p, tree.dst + "/" + filepath.ToSlash(rel), 0o644})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return fl, nil
}

var developersOnly = map[string]bool{"testing.md": true, "benchmarks.md": true}

// conffiles: every file in /etc is the admin's to edit, and dpkg keeps
// their edits across upgrades.
func isConffile(dst string) bool { return strings.HasPrefix(dst, "/etc/") }

func writeDeb(out, root, bin, work string, t target, rel release) (string, error) {
	// Debian's changelog, one entry: this build. The package is native
	// (made with the source, no Debian revision), so it is changelog.gz.
	entry := fmt.Sprintf("kanto-can (%s) unstable; urgency=medium\n\n"+
		"  * Built from commit %s of %s.\n\n -- %s  %s\n",
		rel.Version, rel.Commit, homepage, maintainer, rel.Time.Format(time.RFC1123Z))
	if err := os.WriteFile(filepath.Join(work, "changelog.gz"), gzipped([]byte(entry)), 0o644); err != nil {
		return "", err
	}
	// Manual pages, gzipped as Debian has them.
	for _, b := range []string{"kanto-can", "kanto-can-daemon"} {
		page, err := os.ReadFile(filepath.Join(root, "deploy/man", b+".1"))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(work, b+".1.gz"), gzipped(page), 0o644); err != nil {
			return "", err
		}
	}
	fl, err := packageFiles(root, bin, work)
	if err != nil {
		return "", err
	}
	var contents files.Contents
	for _, f := range fl {
		c := &files.Content{Source: f.src, Destination: f.dst,
			FileInfo: &files.ContentFileInfo{Mode: f.mode, MTime: rel.Time, Owner: "root", Group: "root"}}
		if isConffile(f.dst) {
			c.Type = files.TypeConfig
		}
		contents = append(contents, c)
	}
	info := &nfpm.Info{
		Name:          "kanto-can",
		Arch:          t.deb,
		Platform:      "linux",
		Version:       rel.Version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   description,
		Homepage:      homepage,
		License:       "Apache-2.0",
		MTime:         rel.Time,
		Overridables: nfpm.Overridables{
			// Static binaries: no library. candump and cansend to look at
			// a bus.
			Suggests: []string{"can-utils"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(root, "deploy/debian/postinst"),
				PreRemove:   filepath.Join(root, "deploy/debian/prerm"),
				PostRemove:  filepath.Join(root, "deploy/debian/postrm"),
			},
		},
	}
	info.Umask = 0o022
	name := deb.Default.ConventionalFileName(info)
	f, err := os.Create(filepath.Join(out, name))
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", err
	}
	return name, f.Close()
}

func gzipped(data []byte) []byte {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	gz.Write(data)
	gz.Close()
	return buf.Bytes()
}

// writeSums writes SHA256SUMS in sha256sum's format (sha256sum -c checks it).
func writeSums(out string, names []string) error {
	var sums strings.Builder
	for _, n := range names {
		f, err := os.Open(filepath.Join(out, n))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%x  %s\n", h.Sum(nil), n)
	}
	return os.WriteFile(filepath.Join(out, "SHA256SUMS"), []byte(sums.String()), 0o644)
}
