package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/hook"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

func newHook() *cobra.Command {
	var opts hook.Options
	cmd := &cobra.Command{
		Use:   "hook [prestart|createRuntime|poststop] [--bus SPEC...] [--if-requested]",
		Short: "Run as an OCI hook: attach before the entrypoint, detach after stop",
		Long: `Run as an OCI runtime hook (runc gives the container's state on stdin).
As prestart or createRuntime it attaches the buses given with --bus and those
the container asks for: its annotation io.kanto-can.buses when set (podman run
--annotation), else the KANTO_CAN variable of its environment (buses
separated by ";", each a --bus SPEC, plus ",optional" for a bus that may be
missing, or ",required", the default); as poststop it removes everything attached for the container.
Without a hook name, the container's status decides. A container on the
host's network gets nothing (a note on stderr, exit 0). With --if-requested
a container that asks for nothing is left alone (exit 0): for hooks that run
for every container, as podman's hooks.d with "always". Under a rootless
engine (the hook in a user namespace) a request is refused. An error fails
the container's start.`,
		Example: `  Kanto manifest:
    "hooks": [
      {"path": "/usr/bin/kanto-can", "args": ["kanto-can", "hook", "prestart"], "type": 0},
      {"path": "/usr/bin/kanto-can", "args": ["kanto-can", "hook", "poststop"], "type": 2}
    ]
  with "config": {"env": ["KANTO_CAN=can0;can1:vcan0,dir=rx,optional"]}
  podman (/usr/share/containers/oci/hooks.d, deploy/podman):
    podman run --annotation io.kanto-can.buses=can0 IMAGE`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := hook.ReadState(cmd.InOrStdin())
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			phase, err := hook.PhaseOf(name, st)
			if err != nil {
				return err
			}
			var notes []string
			resolve := func(names []string, req []request.Bus) (granted policy.Granted, err error) {
				granted, notes, err = resolvePolicy(cmd, names, req)
				return granted, err
			}
			names := target.DefaultContainerd.Names(st.ID)
			if err := hook.Run(phase, st, opts, names, resolve, cmd.ErrOrStderr()); err != nil {
				return fmt.Errorf("container %s: %w", names[0], err)
			}
			logNotes(cmd.ErrOrStderr(), notes)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&opts.Buses, "bus", nil, "bus to attach (see kanto-can attach --help); repeatable")
	cmd.Flags().BoolVar(&opts.IfRequested, "if-requested", false, "leave a container that asks for no bus alone (exit 0)")
	return cmd
}
