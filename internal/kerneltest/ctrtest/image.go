package ctrtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// OCI media types and annotations used by the image.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
	annotRefName  = "org.opencontainers.image.ref.name"
	dockerIndex   = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// BusyboxApplets are the links to /bin/busybox that [BuildImage] adds to an
// image with /bin/busybox (busybox-static: no libc needed).
var BusyboxApplets = []string{
	"cat", "echo", "env", "false", "grep", "head", "ip", "kill", "ls", "mkdir",
	"ps", "rm", "sh", "sleep", "tail", "test", "touch", "true", "wc",
}

// imagePath is the PATH of the images' config (and so of their processes).
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// imageConfig is the part of an OCI image config that ends up in the spec.
type imageConfig struct {
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type imageInfo struct {
	chainID string
	config  imageConfig
}

// BuildImage builds a one-layer OCI image and imports it into namespace ns
// as ref, as Kanto would find an image imported with
// `ctr -n kanto-cm images import`: no registry involved.
//
// files maps paths in the image to host files to copy (mode kept; the
// parent directories are created). If the image has /bin/busybox, the links
// of [BusyboxApplets] are added (unless files has them) and the default
// command is /bin/sh. ref must be a full reference such as
// "docker.io/kanto-can/app:1": ctr import prefixes a bare name.
func BuildImage(tb testing.TB, c *Containerd, ns, ref string, files map[string]string) {
	tb.Helper()
	buildImage(tb, c, ns, ref, files, nil)
}

// BuildImageCmd is BuildImage with cmd as the image's default command (a
// pod sandbox image's, which must keep running).
func BuildImageCmd(tb testing.TB, c *Containerd, ns, ref string, files map[string]string, cmd []string) {
	tb.Helper()
	buildImage(tb, c, ns, ref, files, cmd)
}

func buildImage(tb testing.TB, c *Containerd, ns, ref string, files map[string]string, cmd []string) {
	tb.Helper()
	if !strings.ContainsAny(ref, "/:") {
		tb.Fatalf("image ref %q: want a full reference like docker.io/kanto-can/app:1", ref)
	}
	oci, diffID, cfg := ociArchive(tb, runtime.GOARCH, ref, files, cmd)
	archive := filepath.Join(c.dir, "image-"+sha256hex([]byte(ns + "\x00" + ref))[:12]+".tar")
	if err := os.WriteFile(archive, oci, 0o644); err != nil {
		tb.Fatalf("image tar: %v", err)
	}
	defer os.Remove(archive)
	// Unpacked at import (into c's snapshotter), as after a Kanto pull.
	c.mustCtr(tb, "-n", ns, "images", "import", archive)

	c.mu.Lock()
	c.images[ns+"\x00"+ref] = &imageInfo{chainID: diffID, config: cfg}
	c.mu.Unlock()
}

// imageParts returns a one-layer image of files for the Go architecture
// arch: its gzipped layer, the layer's diff id, its config and the
// config's JSON. cmd, when not nil, is the default command.
func imageParts(tb testing.TB, arch string, files map[string]string, cmd []string) (layer []byte, diffID string, cfg imageConfig, configJSON []byte) {
	tb.Helper()
	layer, diffID = buildLayer(tb, files)
	cfg = imageConfig{Env: []string{imagePath}}
	if _, ok := files["/bin/busybox"]; ok {
		cfg.Cmd = []string{"/bin/sh"}
	}
	if cmd != nil {
		cfg.Cmd = cmd
	}
	configJSON = mustJSON(tb, map[string]any{
		"created":      time.Unix(0, 0).UTC(),
		"architecture": arch,
		"os":           "linux",
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	return layer, diffID, cfg, configJSON
}

// OCIArchive returns a one-layer image of files (see [BuildImage]) named
// ref, as an OCI image layout in a tar archive: what `ctr images import`
// and `podman load` read. The image is for the test's own architecture.
func OCIArchive(tb testing.TB, ref string, files map[string]string) []byte {
	tb.Helper()
	return OCIArchiveFor(tb, runtime.GOARCH, ref, files)
}

// OCIArchiveFor is OCIArchive for another architecture (GOARCH's names):
// the files must be built for it.
func OCIArchiveFor(tb testing.TB, arch, ref string, files map[string]string) []byte {
	tb.Helper()
	b, _, _ := ociArchive(tb, arch, ref, files, nil)
	return b
}

func ociArchive(tb testing.TB, arch, ref string, files map[string]string, cmd []string) ([]byte, string, imageConfig) {
	tb.Helper()
	layer, diffID, cfg, configJSON := imageParts(tb, arch, files, cmd)
	blobs := map[string][]byte{}
	add := func(b []byte) string {
		d := "sha256:" + sha256hex(b)
		blobs[d] = b
		return d
	}
	manifest := mustJSON(tb, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        descriptor{MediaType: mediaConfig, Digest: add(configJSON), Size: int64(len(configJSON))},
		"layers":        []descriptor{{MediaType: mediaLayerGz, Digest: add(layer), Size: int64(len(layer))}},
	})
	index := mustJSON(tb, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests": []descriptor{{
			MediaType:   mediaManifest,
			Digest:      add(manifest),
			Size:        int64(len(manifest)),
			Annotations: map[string]string{annotRefName: ref},
			Platform:    &platform{Architecture: arch, OS: "linux"},
		}},
	})
	files2 := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json": index,
	}
	order := []string{"oci-layout", "index.json"}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		name := "blobs/sha256/" + strings.TrimPrefix(d, "sha256:")
		files2[name] = blobs[d]
		order = append(order, name)
	}
	return tarOf(tb, order, files2, false), diffID, cfg
}

// DockerArchive returns a one-layer image of files (see [BuildImage])
// named ref, in Docker's archive format (a manifest.json naming the config
// and the layer, RepoTags with ref): what `docker load` reads (Docker 20.10
// refuses an OCI layout).
func DockerArchive(tb testing.TB, ref string, files map[string]string) []byte {
	tb.Helper()
	layerGz, diffID, _, configJSON := imageParts(tb, runtime.GOARCH, files, nil)
	zr, err := gzip.NewReader(bytes.NewReader(layerGz))
	if err != nil {
		tb.Fatalf("layer: %v", err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatalf("layer: %v", err)
	}
	cfgName := sha256hex(configJSON) + ".json"
	layerName := strings.TrimPrefix(diffID, "sha256:") + "/layer.tar"
	manifest := mustJSON(tb, []map[string]any{{
		"Config":   cfgName,
		"RepoTags": []string{ref},
		"Layers":   []string{layerName},
	}})
	return tarOf(tb, []string{cfgName, layerName, "manifest.json"}, map[string][]byte{
		cfgName: configJSON, layerName: layer, "manifest.json": manifest,
	}, true)
}

// tarOf writes files, in order, as a tar archive, with entries for their
// parent directories first when withDirs (the OCI layout has none, as
// ctr images import and podman load have always read it).
func tarOf(tb testing.TB, order []string, files map[string][]byte, withDirs bool) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	if withDirs {
		for _, name := range order {
			for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
			}
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			tb.Fatalf("image tar: %v", err)
		}
	}
	for _, name := range order {
		b := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("image tar: %v", err)
		}
		if _, err := tw.Write(b); err != nil {
			tb.Fatalf("image tar: %v", err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatalf("image tar: %v", err)
	}
	return buf.Bytes()
}

// buildLayer returns the gzip-compressed layer tar and its diff id (digest of
// the uncompressed tar).
func buildLayer(tb testing.TB, files map[string]string) ([]byte, string) {
	tb.Helper()
	type entry struct {
		hdr  *tar.Header
		host string // file to copy, for regular files
	}
	entries := map[string]entry{}
	epoch := time.Unix(0, 0)
	addDirs := func(p string) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			name := strings.TrimPrefix(d, "/") + "/"
			if _, ok := entries[name]; !ok {
				entries[name] = entry{hdr: &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}}
			}
		}
	}
	for in, host := range files {
		if !path.IsAbs(in) {
			tb.Fatalf("image path %q is not absolute", in)
		}
		st, err := os.Stat(host)
		if err != nil {
			tb.Fatalf("image file %s: %v", in, err)
		}
		if !st.Mode().IsRegular() {
			tb.Fatalf("image file %s: %s is not a regular file", in, host)
		}
		name := strings.TrimPrefix(path.Clean(in), "/")
		entries[name] = entry{
			hdr:  &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64(st.Mode().Perm()), Size: st.Size(), ModTime: epoch},
			host: host,
		}
		addDirs(in)
	}
	if _, ok := files["/bin/busybox"]; ok {
		for _, a := range BusyboxApplets {
			name := "bin/" + a
			if _, ok := entries[name]; !ok {
				entries[name] = entry{hdr: &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: epoch}}
			}
		}
	}
	// Mount points and scratch space a process expects; runc would create
	// the mount points, /tmp it would not.
	for _, d := range []string{"dev/", "etc/", "proc/", "run/", "sys/", "tmp/"} {
		if _, ok := entries[d]; !ok {
			mode := int64(0o755)
			if d == "tmp/" {
				mode = 0o1777
			}
			entries[d] = entry{hdr: &tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode, ModTime: epoch}}
		}
	}

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed) // emulated CPU: speed over size
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, h))
	for _, n := range names {
		e := entries[n]
		if err := tw.WriteHeader(e.hdr); err != nil {
			tb.Fatalf("layer %s: %v", n, err)
		}
		if e.host == "" {
			continue
		}
		f, err := os.Open(e.host)
		if err != nil {
			tb.Fatalf("layer %s: %v", n, err)
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			tb.Fatalf("layer %s from %s: %v", n, e.host, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatalf("layer: %v", err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatalf("layer: %v", err)
	}
	return gz.Bytes(), "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// image returns the chain id and config of an image in containerd, from
// what BuildImage recorded or else from containerd's content store.
func (c *Containerd) image(tb testing.TB, ns, ref string) *imageInfo {
	tb.Helper()
	key := ns + "\x00" + ref
	c.mu.Lock()
	img := c.images[key]
	c.mu.Unlock()
	if img != nil {
		return img
	}
	var target string
	for _, line := range strings.Split(c.mustCtr(tb, "-n", ns, "images", "ls"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == ref {
			target = f[2]
		}
	}
	if target == "" {
		tb.Fatalf("image %s not in containerd namespace %s", ref, ns)
	}
	var doc struct {
		MediaType string       `json:"mediaType"`
		Manifests []descriptor `json:"manifests"`
		Config    descriptor   `json:"config"`
		Layers    []descriptor `json:"layers"`
	}
	get := func(digest string, v any) {
		if err := json.Unmarshal([]byte(c.mustCtr(tb, "-n", ns, "content", "get", digest)), v); err != nil {
			tb.Fatalf("image %s: blob %s: %v", ref, digest, err)
		}
	}
	get(target, &doc)
	if doc.MediaType == mediaIndex || doc.MediaType == dockerIndex || len(doc.Manifests) > 0 {
		var pick string
		for _, m := range doc.Manifests {
			if m.Platform == nil || m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
				pick = m.Digest
				break
			}
		}
		if pick == "" {
			tb.Fatalf("image %s has no linux/%s manifest", ref, runtime.GOARCH)
		}
		get(pick, &doc)
	}
	var cfg struct {
		Config imageConfig `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	get(doc.Config.Digest, &cfg)
	if len(cfg.RootFS.DiffIDs) == 0 {
		tb.Fatalf("image %s has no layers", ref)
	}
	// The identity of the snapshot of the top layer (OCI image spec).
	chain := cfg.RootFS.DiffIDs[0]
	for _, d := range cfg.RootFS.DiffIDs[1:] {
		chain = "sha256:" + sha256hex([]byte(chain+" "+d))
	}
	img = &imageInfo{chainID: chain, config: cfg.Config}
	c.mu.Lock()
	c.images[key] = img
	c.mu.Unlock()
	return img
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("json: %v", err)
	}
	return b
}
