package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

func newAttach() *cobra.Command {
	var tf targetFlags
	var specs []string
	cmd := &cobra.Command{
		Use:   "attach (CONTAINER | --pid PID | --netns PATH) --bus SPEC [--bus SPEC...]",
		Short: "Give a container CAN interfaces wired to host buses",
		Long: `Give a container CAN interfaces wired to host buses. Idempotent: attaching
again changes nothing, or only the rules that differ. A failure part way
removes what the call made.

A bus SPEC is HOSTBUS[:INSIDE][,dir=both|rx|tx][,fd=auto|on|off][,rx=IDS][,tx=IDS]
  INSIDE   name inside the container (default: HOSTBUS)
  dir      seen from the container: rx = receive only, tx = transmit only
  fd       auto follows the host bus (FD bus: classic + FD; classic bus: classic)
  rx, tx   allowed ids, can-utils notation: 7DF, 100-10F, 700/7F0, 18DAF110 (8 digits
           = extended); the list runs until the next key, e.g. rx=7DF,7E8,tx=7E0`,
		Example: `  kanto-can attach databroker --bus can0          # a Kanto container, by name or id
  kanto-can attach --pid 4242 --bus can0
  kanto-can attach --netns /run/netns/app --bus can0:can0,rx=7E8,tx=7DF --bus vcan0,dir=rx`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(specs) == 0 {
				return errors.New("no bus: give at least one --bus SPEC")
			}
			buses := make([]request.Bus, len(specs))
			for i, s := range specs {
				b, err := request.ParseBus(s)
				if err != nil {
					return fmt.Errorf("--bus: %w", err)
				}
				buses[i] = b
			}
			return tf.run(cmd, args, func(t *target.Target, h *attach.Host) error {
				granted, notes, err := resolvePolicy(cmd, tf.containerd.Names(t.Container), buses)
				if err != nil {
					return err
				}
				results, err := h.Attach(t, granted)
				if err != nil {
					return err
				}
				for _, r := range results {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", t.Label, resultLine(r))
				}
				logNotes(cmd.ErrOrStderr(), notes)
				return nil
			})
		},
	}
	tf.register(cmd)
	// StringArray, not StringSlice: a SPEC contains commas.
	cmd.Flags().StringArrayVar(&specs, "bus", nil, "host bus to attach, with options (see above); repeatable")
	return cmd
}

// resultLine says what attach did for one bus.
func resultLine(r attach.Result) string {
	what := "unchanged"
	switch {
	case r.Created && r.Plan.Pending:
		what = "created; the bus does not exist (optional): no route until it appears"
	case r.Created:
		what = fmt.Sprintf("created, %d rules", r.Added)
	case r.Added+r.Removed > 0 || r.RateChanged:
		what = fmt.Sprintf("updated, %d rules added, %d removed", r.Added, r.Removed)
		if r.RateChanged {
			what += ", rate limit changed"
		}
	}
	if r.Bridged {
		what = "bridged by kanto-can-daemon (this kernel has no vxcan, or the policy asks for bridge mode)"
		if !r.Created {
			what = "bridged by kanto-can-daemon, grant renewed"
		}
		return fmt.Sprintf("%s -> %s (dir=%s, fd=%v): %s", r.Plan.Request.Host, r.Plan.Request.Inside, r.Plan.Request.Dir, r.Plan.FD, what)
	}
	if rate := r.Plan.Request.TxRate; rate != nil {
		what += ", tx rate " + rate.String()
	}
	return fmt.Sprintf("%s -> %s (host end %s, dir=%s, fd=%v): %s",
		r.Plan.Request.Host, r.Plan.Request.Inside, r.Plan.HostEnd, r.Plan.Request.Dir, r.Plan.FD, what)
}
