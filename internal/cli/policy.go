package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// defaultConfig is the default of --config (a variable for tests).
var defaultConfig = policy.DefaultPath

// policyFile is the --config flag of every command: the policy file, and
// whether the user named it.
func policyFile(cmd *cobra.Command) (path string, explicit bool) {
	f := cmd.Flag("config") // the root's, found from any command
	return f.Value.String(), f.Changed
}

// loadPolicy reads the admin's policy by the rule of policy.Open: --config
// names a file that must exist; without it, no file at the default path
// means no policy.
func loadPolicy(cmd *cobra.Command) (p *policy.Policy, notes []string, err error) {
	return policy.Open(policyFile(cmd))
}

// logNotes writes notes to the log (stderr).
func logNotes(log io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(log, "kanto-can: %s\n", n)
	}
}

func newPolicy() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check the admin's policy file",
	}
	var containerd target.Containerd
	check := &cobra.Command{
		Use:   "check [CONTAINER...]",
		Short: "Validate the policy file and show what containers would get",
		Long: `Validate the policy file (--config, default ` + policy.DefaultPath + `) and print,
for each container named (a Kanto name or id; by default one line per entry's
patterns and the default), the buses it would get: direction, receive and
transmit allow-lists, transmit rate limit. A container Kanto knows is
matched by its name and its id, whichever was given. Without a file at the
default path there is no policy: it says so, and what that allows (every
container may use every bus), and exits 0; a file named with --config must
exist.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			configPath, explicit := policyFile(cmd)
			p, err := policy.Load(configPath)
			if errors.Is(err, fs.ErrNotExist) && !explicit {
				// No file is a valid policy: everything is allowed. A
				// file named with --config must exist.
				fmt.Fprintf(out, "policy: %s\n", policy.InForce{Path: configPath})
				return nil
			}
			if err != nil {
				return fmt.Errorf("policy: %w", err)
			}
			fmt.Fprintf(out, "%s: valid\n", configPath)
			for _, w := range p.Warnings {
				fmt.Fprintf(out, "warning: %s\n", w)
			}
			names := args
			if len(names) == 0 {
				for _, c := range p.Containers {
					names = append(names, c.Match[0])
				}
			}
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "CONTAINER\tENTRY\tBUS\tDIR\tRX\tTX\tTX RATE")
			row := func(name string) {
				a, entry := p.For(append(containerd.Names(containerd.ContainerID(name)), name)...)
				if a == nil || len(a.Buses) == 0 {
					fmt.Fprintf(w, "%s\t%s\t-\tnothing\t\t\t\n", name, or(entry, "none"))
					return
				}
				for _, bus := range sortedBuses(a) {
					g := a.Buses[bus]
					rate := "-"
					if g.TxRate != nil && g.Dir.Transmits() {
						rate = g.TxRate.String()
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, entry, bus, g.Dir, ids(g.RX, g.Dir.Receives()), ids(g.TX, g.Dir.Transmits()), rate)
				}
			}
			for _, n := range names {
				row(n)
			}
			if len(args) == 0 {
				row("(any other)")
			}
			return w.Flush()
		},
	}
	registerContainerd(check, &containerd)
	cmd.AddCommand(check)
	return cmd
}

func sortedBuses(a *policy.Access) []string {
	var names []string
	for n := range a.Buses {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func ids(l *canid.List, used bool) string {
	switch {
	case !used:
		return "-"
	case l == nil:
		return "all"
	}
	return l.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// resolvePolicy applies the policy to a request for a container with these
// names (empty names are ignored). The notes are for logNotes.
func resolvePolicy(cmd *cobra.Command, names []string, buses []request.Bus) (policy.Granted, []string, error) {
	p, notes, err := loadPolicy(cmd)
	if err != nil {
		return policy.Granted{}, nil, err
	}
	var nonEmpty []string
	for _, n := range names {
		if strings.TrimSpace(n) != "" {
			nonEmpty = append(nonEmpty, n)
		}
	}
	granted, err := p.Resolve(nonEmpty, buses)
	return granted, notes, err
}
