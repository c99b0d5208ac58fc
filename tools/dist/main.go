// Command dist makes kanto-can's release artifacts (make dist): for
// linux/amd64, linux/arm64 and linux/arm (GOARM=7) the static binaries in a
// tarball and a Debian package (built with nfpm), and SHA256SUMS beside
// them. Two runs on one commit give the same bytes: the version and every
// time come from the commit (see gitRelease), the builds are -trimpath with
// no build id, the archives have fixed owners and modes.
//
//	dist [-src DIR] [-out DIR] [-arch LIST] [-version V]
//	                             the artifacts of the checkout DIR into -out
//	dist version [-src DIR]      the version the checkout is released as
//
// -arch builds only the named architectures (Debian's names: amd64, arm64,
// armhf; comma-separated). -version releases the checkout under another
// version than git's (the device test bed's upgrade starts from one that
// sorts before it).
//
// It is a module of its own so that the packaging tools stay out of
// kanto-can's dependencies.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	printVersion := len(args) > 0 && args[0] == "version"
	if printVersion {
		args = args[1:]
	}
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	src := fs.String("src", "../..", "the kanto-can checkout")
	out := fs.String("out", "", "where the artifacts go (emptied first)")
	arch := fs.String("arch", "", "only these architectures (amd64, arm64, armhf; comma-separated)")
	version := fs.String("version", "", "this version instead of the one git gives")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	root, err := filepath.Abs(*src)
	if err != nil {
		return err
	}
	rel, err := gitRelease(root)
	if err != nil {
		return err
	}
	if *version != "" {
		if !debianVersion.MatchString(*version) {
			return fmt.Errorf("-version %q: not a Debian upstream version (a digit, then letters, digits and . + ~)", *version)
		}
		rel.Version = *version
	}
	tgs, err := selectTargets(*arch)
	if err != nil {
		return err
	}
	if printVersion {
		fmt.Fprintln(stdout, rel.Version)
		return nil
	}
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	outDir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	names, err := build(root, outDir, rel, tgs)
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintln(stdout, filepath.Join(outDir, n))
	}
	return nil
}
