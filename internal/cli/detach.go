package cli

import (
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
	cmd := &cobra.Command{
		Use:   "detach (--pid PID | --netns PATH) [--bus HOSTBUS...]",
		Short: "Remove a container's CAN interfaces and their gateway rules",
		Long: `Remove the container's vxcan pairs made by kanto-can (all, or those of the
given host buses) and so every can-gw rule naming them. Links and rules made
by anyone else are never touched. Detaching what is not attached is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, b := range buses {
				if err := request.CheckIfName("--bus", b); err != nil {
					return err
				}
			}
			return tf.run(cmd, func(t *target.Target, h *attach.Host) error {
				gone, err := h.Detach(t, buses)
				if err != nil {
					return err
				}
				if len(gone) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: nothing attached\n", t.Label)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: detached %s\n", t.Label, strings.Join(gone, ", "))
				return nil
			})
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&buses, "bus", nil, "host bus to detach (default: all); repeatable")
	return cmd
}
