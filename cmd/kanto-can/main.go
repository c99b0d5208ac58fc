// Command kanto-can gives containers their own CAN interfaces, wired to host
// CAN buses through vxcan and the kernel's CAN gateway. See the README.
//
// Installed (or linked) under the name "runc" ahead of the real runc in
// containerd's PATH, it is the runc wrapper of package runcwrap instead.
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
	cli.Run()
}
