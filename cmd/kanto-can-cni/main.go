// Command kanto-can-cni is kanto-can as a CNI plugin (package internal/cni):
// install it in the CNI bin dir (/opt/cni/bin, or /usr/lib/cni on Debian)
// and name it "kanto-can-cni" in a conflist or a NetworkAttachmentDefinition.
// A binary of its own: the CNI library stays out of kanto-can.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/kanto-can/kanto-can/internal/cni"
	kversion "github.com/kanto-can/kanto-can/internal/version"
)

func main() {
	p := &cni.Plugin{Stdout: os.Stdout, Stderr: os.Stderr}
	skel.PluginMainFuncs(p.Funcs(),
		version.PluginSupports(cni.SpecVersions...),
		"CNI plugin kanto-can-cni "+kversion.Version())
}
