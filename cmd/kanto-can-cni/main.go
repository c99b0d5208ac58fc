// Command kanto-can-cni is kanto-can as a CNI plugin (package internal/cni):
// install it in the CNI bin dir (/opt/cni/bin, or /usr/lib/cni on Debian)
// and name it "kanto-can-cni" in a conflist or a NetworkAttachmentDefinition.
// A binary of its own: the CNI library stays out of kanto-can.
package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/kanto-can/kanto-can/internal/cni"
	kversion "github.com/kanto-can/kanto-can/internal/version"
)

func main() {
	// A runtime calls a plugin without arguments (the command is in
	// CNI_COMMAND), so --version can only come from a person or a script.
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println("kanto-can-cni version", kversion.Version())
		return
	}
	p := &cni.Plugin{Stdout: os.Stdout, Stderr: os.Stderr}
	skel.PluginMainFuncs(p.Funcs(),
		version.PluginSupports(cni.SpecVersions...),
		"CNI plugin kanto-can-cni "+kversion.Version())
}
