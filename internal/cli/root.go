// Package cli is kanto-can's command line: one cobra command per file, each
// a thin front end over package attach.
package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/version"
)

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "kanto-can",
		Short: "Give containers their own CAN interfaces, wired to host CAN buses",
		Long: `kanto-can gives a container its own SocketCAN interface (vxcan), wired to a host
CAN bus through the kernel's CAN gateway (can-gw), using netlink only.`,
		Version:       version.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&configPath, "config", policy.DefaultPath, "the admin's policy file (see docs/policy.md)")
	root.AddCommand(newAttach(), newDetach(), newLs(), newStatus(), newTop(), newHook(), newPolicy(), newDaemon())
	return root
}

// Main runs the command line and returns the process exit code. Errors are
// printed as one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "kanto-can: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Run is main's body.
func Run() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}
