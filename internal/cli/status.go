package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kanto"
	"github.com/kanto-can/kanto-can/internal/policy"
)

func newStatus() *cobra.Command {
	var output outputFlag
	var kantoStore kanto.Store
	cmd := &cobra.Command{
		Use:   "status [-o table|json]",
		Short: "Show the policy in force and the host buses that have attachments",
		Long: `Show the admin's policy in force (--config, default ` + policy.DefaultPath + `): the file,
its sha256 and how many bus and container entries it has, and whether it
has a default; or that there is none, and that then any container may use
any bus, both ways, every id, with no rate limit; or why the file cannot
be used (then every attach fails).

Then every host CAN bus that has attachments made by kanto-can, one line
each: its ifindex, kind (can: a controller; vcan, vxcan: virtual), whether
it is up, for a CAN controller its error state (error-active,
error-warning, error-passive, bus-off, stopped when down, sleeping) and
bitrate in bit/s (nominal/data for CAN FD), whether it carries CAN FD, and
how many attachments it has ("2 (1 bridged)": how many of them
kanto-can-daemon bridges, where the kernel has no vxcan) and whose they are
(containers by Kanto name). A bus that is gone is shown "(missing)" (bus_index 0 in JSON).

In JSON (schema: docs/cli/status.schema.json): policy (path, present,
sha256, buses, containers, default, summary, error) and buses, each with
bus, bus_index, kind, up, state, bitrate, data_bitrate (the last three
absent when not applicable or not set), fd, mtu, attachments, bridged
(absent when none), who,
counters (the bus interface's frames, bytes, errors and drops since it was
made: rx_frames, tx_frames, rx_bytes, tx_bytes, rx_errors, tx_errors,
rx_dropped, tx_dropped; absent when the bus is gone) and errors (a CAN
controller's error counters and events: tx_error_counter,
rx_error_counter, bus_errors, error_warning, error_passive, bus_off,
arbitration_lost, restarts; absent for virtual buses).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := output.check(); err != nil {
				return err
			}
			pol := policyInForce(policyFile(cmd))
			h, err := attach.OpenHost(attach.WithNames(kantoStore.Names))
			if err != nil {
				return err
			}
			defer h.Close()
			buses, err := h.HostBuses()
			if err != nil {
				return err
			}
			v := statusView{Policy: pol, Buses: buses}
			return output.write(cmd.OutOrStdout(), v, func(w io.Writer) { printStatus(w, v) })
		},
	}
	output.register(cmd)
	registerKanto(cmd, &kantoStore)
	return cmd
}

// statusView is what status shows: the policy in force and the buses.
type statusView struct {
	Policy policyStatus           `json:"policy"`
	Buses  []attach.HostBusStatus `json:"buses"`
}

// policyStatus is the policy in force with its line for people, or why
// the file cannot be used.
type policyStatus struct {
	policy.InForce
	Summary string `json:"summary"`
	Error   string `json:"error,omitempty"`
}

// policyInForce describes the policy as an attach would read it.
func policyInForce(path string, explicit bool) policyStatus {
	return describePolicy(policy.Describe(path, explicit))
}

// describePolicy says what policy.Describe found. An error is shown, not
// returned: status is where an admin looks for it.
func describePolicy(in policy.InForce, err error) policyStatus {
	if err == nil {
		return policyStatus{InForce: in, Summary: in.String()}
	}
	msg := oneLine(err.Error())
	why := "unusable, every attach fails: " // with the same error
	if errors.Is(err, fs.ErrPermission) {
		// status may run as a user who cannot read what root's attach can.
		why = "not readable by this user: "
	}
	return policyStatus{InForce: in, Summary: why + msg, Error: msg}
}

func printStatus(out io.Writer, v statusView) {
	fmt.Fprintf(out, "policy: %s\n\n", v.Policy.Summary)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "BUS\tINDEX\tKIND\tUP\tSTATE\tBITRATE\tFD\tATTACHMENTS\tCONTAINERS")
	if len(v.Buses) == 0 {
		fmt.Fprintln(w, "(no bus has attachments)")
	}
	for _, b := range v.Buses {
		who := strings.Join(b.Who, ", ")
		count := strconv.Itoa(b.Attachments)
		if b.Bridged > 0 {
			count += fmt.Sprintf(" (%d bridged)", b.Bridged)
		}
		if b.Index == 0 {
			fmt.Fprintf(w, "%s (missing)\t-\t-\t-\t-\t-\t-\t%s\t%s\n", b.Name, count, who)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Index, b.Kind, yesNo(b.Up, true),
			dash(b.State), bitrate(b.Bitrate, b.DataBitrate), yesNo(b.FD, true), count, who)
	}
	w.Flush()
}
