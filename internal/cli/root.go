// Package cli is kanto-can's command line: one cobra command per file, each
// a thin front end over package attach.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().String("config", defaultConfig, "the admin's policy file (see docs/policy.md)")
	root.AddCommand(newAttach(), newDetach(), newLs(), newStatus(), newTop(), newHook(), newPolicy(), newDaemon())
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command that only groups others
// (kanto-can policy) refuse an argument that is none of them: cobra would
// print the help and exit 0, so a typo would look like success. Without
// an argument such a command still prints its help.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if cmd.HasParent() && cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q (try %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		}
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// flagError says which flag had which bad value and what it wants, in
// place of pflag's wording (`invalid argument "abc" for "--pid" flag:
// strconv.ParseInt: parsing "abc": invalid syntax`).
func flagError(_ *cobra.Command, err error) error {
	var bad *pflag.InvalidValueError
	if !errors.As(err, &bad) {
		return err
	}
	f := bad.GetFlag()
	want := map[string]string{
		"int":      "a whole number",
		"uint":     "a whole number, 0 or more",
		"duration": "a duration such as 500ms, 2s or 1m",
		"bool":     "true or false",
	}[f.Value.Type()]
	if f.Name == "pid" {
		want = "a process id (a whole number)"
	}
	if want == "" {
		return fmt.Errorf("--%s %q: %v", f.Name, bad.GetValue(), errors.Unwrap(err))
	}
	return fmt.Errorf("--%s %q: not %s", f.Name, bad.GetValue(), want)
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
