package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/target"
)

func newLs() *cobra.Command {
	var output outputFlag
	var containerd target.Containerd
	cmd := &cobra.Command{
		Use:   "ls [CONTAINER] [-o table|json]",
		Short: "List attachments, their gateway rules and counters",
		Long: `List every attachment made by kanto-can: target, host bus, inside name, host
end, direction, and each can-gw rule with its filter and counters (handled:
frames forwarded; dropped: lost, e.g. destination down; deleted: discarded by
the hop limit), and the transmit rate limit with the frames it passed and
dropped. TARGET is "container NAME" for a container Kanto knows (its
current name, from Kanto's records), else how it was attached. With
CONTAINER (a Kanto name or id), only that container's attachments.

The host bus's state as the kernel shows it now: for a CAN controller its
error state (STATE: error-active, error-warning, error-passive, bus-off,
stopped when down, sleeping) and BITRATE in bit/s (nominal/data for CAN FD;
"-" when none is set); "-" for virtual buses (vcan). BUS FD: whether the bus
carries CAN FD. 'kanto-can status' sums up per bus.

In JSON (schema: docs/cli/ls.schema.json), a list: who (the TARGET column),
target, label (as attached), container (the id) and name (the Kanto name)
when known, bus, bus_index, bus_state, bus_bitrate, bus_data_bitrate
(absent when not applicable or not set), bus_fd, inside, host_end,
host_end_index, fd, dir, rules (dir, fd, filter, handled, dropped,
deleted) and tx_rate (frames_per_second, burst, passed, dropped; absent
without a limit): the names status and top use for the same things.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.check(); err != nil {
				return err
			}
			var id string
			if len(args) == 1 {
				var err error
				if id, err = knownContainer(containerd, args[0]); err != nil {
					return err
				}
			}
			h, err := attach.OpenHost(attach.WithNames(containerd.Kanto.Names))
			if err != nil {
				return err
			}
			defer h.Close()
			list, err := h.List()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				// Only the attachments recorded for that container.
				var mine []attach.Attachment
				for _, a := range list {
					if a.Container == id {
						mine = append(mine, a)
					}
				}
				list = mine
			}
			if list == nil {
				list = []attach.Attachment{} // JSON: [], not null
			}
			return output.write(cmd.OutOrStdout(), list, func(w io.Writer) { printTable(w, list) })
		},
	}
	output.register(cmd)
	registerContainerd(cmd, &containerd)
	return cmd
}

func printTable(out io.Writer, list []attach.Attachment) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TARGET\tBUS\tSTATE\tBITRATE\tBUS FD\tINSIDE\tHOST END\tDIR\tRULE\tFRAMES\tFILTER\tHANDLED\tDROPPED\tDELETED\tTX RATE")
	for _, a := range list {
		bus := a.HostBus
		if a.HostBusIndex == 0 {
			bus += " (missing)"
		}
		bus = fmt.Sprintf("%s\t%s\t%s\t%s", bus, dash(a.HostBusState), bitrate(a.HostBusBitrate, a.HostBusDataBitrate), yesNo(a.HostBusFD, a.HostBusIndex != 0))
		rate := "-"
		if a.TxRate != nil {
			rate = fmt.Sprintf("%d/s burst %d (passed %d, dropped %d)", a.TxRate.FramesPerSecond, a.TxRate.Burst, a.TxRate.Passed, a.TxRate.Dropped)
		}
		if len(a.Rules) == 0 {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\n", a.Who(), bus, a.Inside, a.HostEnd, a.Direction())
		}
		for _, r := range a.Rules {
			frames := "classic"
			if r.FD {
				frames = "fd"
			}
			rowRate := "-"
			if r.Direction == "tx" {
				rowRate = rate
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n",
				a.Who(), bus, a.Inside, a.HostEnd, a.Direction(), r.Direction, frames, r.Filter, r.Handled, r.Dropped, r.Deleted, rowRate)
		}
	}
	w.Flush()
}

// dash shows "" as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bitrate shows a bus's bitrate in bit/s, nominal/data when it has a data
// bitrate (CAN FD), "-" without one.
func bitrate(nominal, data uint32) string {
	switch {
	case nominal == 0 && data == 0:
		return "-"
	case data == 0:
		return fmt.Sprint(nominal)
	}
	return fmt.Sprintf("%d/%d", nominal, data)
}

// yesNo shows a flag, or "-" when it is not known.
func yesNo(v, known bool) string {
	switch {
	case !known:
		return "-"
	case v:
		return "yes"
	}
	return "no"
}
