// Command kanto-can gives containers their own CAN interfaces, wired to host
// CAN buses through vxcan and the kernel's CAN gateway. See the README.
//
// Installed (or linked) under the name "runc" ahead of the real runc in
// containerd's PATH, it is the runc wrapper of package runcwrap instead;
// called with runc's command line (an engine's runtime named by path, as
// Docker's daemon.json "runtimes"), it is that wrapper for every container
// that chose it.
package main

import (
	"os"
	"path/filepath"

	"github.com/kanto-can/kanto-can/internal/cli"
	"github.com/kanto-can/kanto-can/internal/runcwrap"
)

func main() {
	if filepath.Base(os.Args[0]) == runcwrap.Name {
		os.Exit(runcwrap.Main(os.Args, os.Stderr))
	}
	if runcwrap.CalledAsRuntime(os.Args[1:]) {
		os.Exit(runcwrap.MainRuntime(os.Args, os.Stderr))
	}
	cli.Run()
}
