package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kanto-can/kanto-can/internal/sample"
)

// topHeader is the screen's first line.
func topHeader(v sample.View, order sample.Order) string {
	return fmt.Sprintf("kanto-can top  %s  interval %s  sort %s", v.Time.Format("15:04:05"),
		(time.Duration(v.Interval * float64(time.Second))).Round(time.Millisecond), order)
}

// printTop prints a view's two tables: buses, then attachments (in the
// order they are in).
func printTop(out io.Writer, v sample.View) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "BUS\tSTATE\tBITRATE\tFD\tLOAD\tRX/s\tTX/s\tTXERR\tRXERR\tATTACHMENTS")
	if len(v.Buses) == 0 {
		fmt.Fprintln(w, "(no bus has attachments)")
	}
	for _, b := range v.Buses {
		if b.Gone {
			fmt.Fprintf(w, "%s (gone)\t-\t-\t-\t-\t-\t-\t-\t-\t%d\n", b.Name, b.Attachments)
			continue
		}
		state := b.State
		if state == "" {
			state = "up"
			if !b.Up {
				state = "down"
			}
		}
		load := "-"
		if b.Load != nil {
			load = fmt.Sprintf("%.1f%%", *b.Load)
		}
		txerr, rxerr := "-", "-"
		if b.Errors != nil && b.Errors.TxErrorCounter != nil {
			txerr, rxerr = fmt.Sprint(*b.Errors.TxErrorCounter), fmt.Sprint(*b.Errors.RxErrorCounter)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", b.Name, state, bitrate(b.Bitrate, b.DataBitrate),
			yesNo(b.FD, true), load, perSecond(b.RxPerSecond), perSecond(b.TxPerSecond), txerr, rxerr, b.Attachments)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CONTAINER\tBUS\tINSIDE\tDIR\tRX/s\tTX/s\tDROP/s\tLIMIT/s\tRX\tTX\tDROPS\tLIMITED")
	if len(v.Attachments) == 0 {
		fmt.Fprintln(w, "(no attachments)")
	}
	for _, a := range v.Attachments {
		who := a.Who
		if a.Name != "" {
			who = a.Name
		}
		if a.Gone {
			who += " (gone)"
		}
		limit, limited := "-", uint64(0)
		if a.TxRate != nil {
			limit, limited = perSecond(a.TxRate.DroppedPerSecond), a.TxRate.Dropped
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", who, a.HostBus, a.Inside, a.Direction,
			perSecond(a.RxPerSecond), perSecond(a.TxPerSecond), perSecond(a.DroppedPerSecond), limit,
			a.RxFrames, a.TxFrames, a.Dropped, limited)
	}
	w.Flush()
}

// perSecond shows a rate with one decimal.
func perSecond(r float64) string { return fmt.Sprintf("%.1f", r) }
