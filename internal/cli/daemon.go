package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/nl"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/vxcan"
)

func newDaemon() *cobra.Command {
	records := record.DefaultDir
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Keep attachments routed: put rules back when a bus comes back",
		Long: `Watch the host's network interfaces and reconcile the attachments' records
(` + record.DefaultDir + `) with the kernel: at start, and whenever a link appears or
goes away. A bus that reappears (a replugged adapter, a reloaded driver, a
re-created vcan) gets its containers' gateway rules and rate limits back; the
records of containers whose interfaces are gone are removed. The daemon is
optional: without it, hooks and attach still attach and detach correctly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			h, err := attach.OpenHost()
			if err != nil {
				return err
			}
			defer h.Close()
			h.Records = records
			// Subscribe before the first pass, so no change falls between.
			w, err := nl.Watch(unix.RTMGRP_LINK)
			if err != nil {
				return err
			}
			go func() { <-ctx.Done(); w.Close() }()
			reconcile := func(why string) {
				changed, err := h.Reconcile()
				if err != nil {
					log.Warn("reconcile", "why", why, "err", err)
				}
				if len(changed) > 0 {
					log.Info("reconciled", "why", why, "restored", changed)
				}
			}
			reconcile("start")
			log.Info("ready", "records", records)
			for {
				msgs, err := w.Receive()
				switch {
				case ctx.Err() != nil:
					log.Info("stopping")
					return nil
				case errors.Is(err, unix.ENOBUFS):
					reconcile("missed link events")
					continue
				case err != nil:
					return err
				}
				for _, m := range msgs {
					l, err := vxcan.ParseLink(m)
					if err != nil {
						continue
					}
					switch {
					case m.Header.Type == unix.RTM_DELLINK && strings.HasPrefix(l.Name, attach.HostEndPrefix):
						// A container's interface went with its namespace.
						if err := record.Remove(records, l.Name); err != nil {
							log.Warn("remove record", "host_end", l.Name, "err", err)
						} else {
							log.Info("forgot", "host_end", l.Name)
						}
					case m.Header.Type == unix.RTM_NEWLINK && l.IsCAN() && !strings.HasPrefix(l.Name, attach.HostEndPrefix):
						// A bus (re)appeared, or changed: put its rules back.
						reconcile("bus " + l.Name)
					}
				}
			}
		},
	}
	cmd.Flags().StringVar(&records, "records", records, "directory of the attachments' records")
	return cmd
}
