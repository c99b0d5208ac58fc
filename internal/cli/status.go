package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kanto"
)

func newStatus() *cobra.Command {
	var output outputFlag
	var kantoStore kanto.Store
	cmd := &cobra.Command{
		Use:   "status [-o table|json]",
		Short: "Show the host buses that have attachments, their state and bitrate",
		Long: `Show every host CAN bus that has attachments made by kanto-can, one line each:
its ifindex, kind (can: a controller; vcan, vxcan: virtual), whether it is
up, for a CAN controller its error state (error-active, error-warning,
error-passive, bus-off, stopped when down, sleeping) and bitrate in bit/s
(nominal/data for CAN FD), whether it carries CAN FD, and how many
attachments it has and whose they are (containers by Kanto name). A bus
that is gone is shown "(missing)" (index 0 in JSON). In JSON: bus, index,
kind, up, state, bitrate, data_bitrate (the last three absent when not
applicable or not set), fd, mtu, attachments, containers, counters (the
bus interface's frames, bytes, errors and drops since it was made: rx_frames,
tx_frames, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped;
absent when the bus is gone) and errors (a CAN controller's error counters
and events: tx_error_counter, rx_error_counter, bus_errors, error_warning,
error_passive, bus_off, arbitration_lost, restarts; absent for virtual
buses).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := output.check(); err != nil {
				return err
			}
			h, err := attach.OpenHost()
			if err != nil {
				return err
			}
			defer h.Close()
			h.Names = kantoStore.Names
			buses, err := h.HostBuses()
			if err != nil {
				return err
			}
			return output.write(cmd.OutOrStdout(), buses, func(w io.Writer) { printBuses(w, buses) })
		},
	}
	output.register(cmd)
	registerKanto(cmd, &kantoStore)
	return cmd
}

func printBuses(out io.Writer, buses []attach.HostBusStatus) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "BUS\tINDEX\tKIND\tUP\tSTATE\tBITRATE\tFD\tATTACHMENTS\tCONTAINERS")
	for _, b := range buses {
		containers := strings.Join(b.Containers, ", ")
		if b.Index == 0 {
			fmt.Fprintf(w, "%s (missing)\t-\t-\t-\t-\t-\t-\t%d\t%s\n", b.Name, b.Attachments, containers)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", b.Name, b.Index, b.Kind, yesNo(b.Up, true),
			dash(b.State), bitrate(b.Bitrate, b.DataBitrate), yesNo(b.FD, true), b.Attachments, containers)
	}
	w.Flush()
}
