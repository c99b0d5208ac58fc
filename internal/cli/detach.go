package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

func newDetach() *cobra.Command {
	var tf targetFlags
	var buses []string
	var all bool
	cmd := &cobra.Command{
		Use:   "detach (CONTAINER | --pid PID | --netns PATH) [--bus HOSTBUS...] | detach --all",
		Short: "Remove a container's CAN interfaces and their gateway rules",
		Long: `Remove the container's vxcan pairs made by kanto-can (all, or those of the
given host buses) and so every can-gw rule naming them. Links and rules made
by anyone else are never touched. Detaching what is not attached is not an error.

--all removes every attachment kanto-can made, of every container (the
containers keep running without their CAN interfaces): what removing the
package does.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all {
				if len(args) > 0 || cmd.Flags().Changed("pid") || cmd.Flags().Changed("netns") || len(buses) > 0 {
					return errors.New("--all detaches every container: name no container, --pid, --netns or --bus with it")
				}
				return detachAll(cmd)
			}
			for _, b := range buses {
				if err := request.CheckIfName("--bus", b); err != nil {
					return err
				}
			}
			report := func(label string, gone []string) {
				if len(gone) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: nothing attached\n", label)
					return
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: detached %s\n", label, strings.Join(gone, ", "))
			}
			if len(args) == 1 && len(buses) == 0 {
				// By container id, recorded with each attachment: works
				// when the container's process is already gone.
				if cmd.Flags().Changed("pid") || cmd.Flags().Changed("netns") {
					return errors.New("name the container one way: CONTAINER, --pid or --netns")
				}
				id, err := knownContainer(tf.containerd, args[0])
				if err != nil {
					return err
				}
				h, err := attach.OpenHost(attach.WithRecords(recordsDir))
				if err != nil {
					return err
				}
				defer h.Close()
				gone, err := h.DetachContainer(id)
				if err != nil {
					return err
				}
				report("container "+args[0], gone)
				return nil
			}
			return tf.run(cmd, args, func(t *target.Target, h *attach.Host) error {
				gone, err := h.Detach(t, buses)
				if err != nil {
					return err
				}
				report(t.Label, gone)
				return nil
			})
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&buses, "bus", nil, "host bus to detach (default: all); repeatable")
	cmd.Flags().BoolVar(&all, "all", false, "detach every container kanto-can attached")
	return cmd
}

// detachAll removes every attachment of ours, one line for each.
func detachAll(cmd *cobra.Command) error {
	h, err := attach.OpenHost(attach.WithRecords(recordsDir))
	if err != nil {
		return err
	}
	defer h.Close()
	gone, err := h.DetachAll()
	for _, m := range gone {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: detached %s\n", m.Label, m.HostBus)
	}
	if err == nil && len(gone) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "nothing attached")
	}
	return err
}
