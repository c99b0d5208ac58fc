// Command kanto-can-daemon keeps kanto-can's attachments routed across bus
// replugs, container exits and crashes, and serves their metrics. See
// package internal/daemon. It is a binary of its own so that what it needs
// (gRPC for containerd's events, the Prometheus client) does not slow down
// kanto-can itself, which runs on every container start.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/daemon"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/version"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kanto-can-daemon:", err)
		os.Exit(1)
	}
}

// runDaemon and defaultPolicy are variables for tests.
var (
	runDaemon     = daemon.Run
	defaultPolicy = policy.DefaultPath
)

func newCommand() *cobra.Command {
	cfg := daemon.DefaultConfig()
	namespaces := strings.Join(cfg.Namespaces, ",")
	logFormat, logLevel := "text", "info"
	cfg.Policy = defaultPolicy
	cmd := &cobra.Command{
		Use:   "kanto-can-daemon",
		Short: "Keep kanto-can's attachments routed, clean up after containers, serve metrics",
		Long: `kanto-can-daemon reconciles kanto-can's records (` + cfg.Records + `) with the
kernel at start, whenever a CAN link appears, changes or goes away, and when
containerd reports that a task of a watched namespace exited or was deleted:

  - a bus that comes back (a replugged adapter, a reloaded driver, a
    re-created vcan) gets its containers' gateway rules and rate limits back;
    an optional bus is routed when it appears;
  - a container whose init process is gone loses its attachments, even if its
    network namespace lives on; a pod's (kanto-can-cni) when its sandbox's
    task exits or is deleted (namespace k8s.io);
  - a host end of ours left half made by a process that was killed is removed;
  - gateway rules of ours that another tool removed (cangw -F) are put back:
    the kernel reports no rule changes, so every --audit-interval the daemon
    counts the rules of its host ends (two netlink dumps).

Links and rules kanto-can did not make are never touched. Metrics (Prometheus
text format) are served at /metrics on --metrics-address. The daemon is
optional: kanto-can's hooks attach and detach correctly without it.

It logs the policy in force at start and whenever it changes (a warning when
there is none: every container that asks gets every bus, both ways, with no
rate limit), and warns once when containerd becomes unreachable (no cleanup
until it is back) and when the rule audit starts failing (can-gw not loaded),
with one line when each ends.

With --ditto it also shows the CAN state to the fleet backend as Eclipse
Ditto features of the device's thing (CANManager, CANBus:<ifname>,
CANMetrics), over Kanto's local MQTT broker (--mqtt-broker), as Kanto's own
components do. Read-only: nothing is attached or detached from the cloud.`,
		Args:          cobra.NoArgs,
		Version:       version.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepare(cmd, &cfg, namespaces, logFormat, logLevel); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runDaemon(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Records, "records", cfg.Records, "directory of the attachments' records")
	f.StringVar(&cfg.Containerd, "containerd-address", cfg.Containerd, `containerd's socket ("" to not watch containerd)`)
	f.StringVar(&namespaces, "namespace", namespaces, "containerd namespaces to watch, comma-separated (Kanto's, the CRI's, Docker's)")
	f.StringVar(&cfg.Policy, "config", cfg.Policy, "the admin's policy file the hooks apply, reported in the log, the metrics and CANManager (no file: every container may use every bus; one named here must exist)")
	f.DurationVar(&cfg.AuditInterval, "audit-interval", cfg.AuditInterval, "how often to count the gateway rules of our host ends, to restore rules another tool removed (0: never)")
	f.StringVar(&cfg.Kanto.Dir, "kanto-meta", cfg.Kanto.Dir, "Kanto's container records (metrics show containers' Kanto names)")
	f.StringVar(&cfg.Metrics, "metrics-address", cfg.Metrics, `where to serve metrics: HOST:PORT or unix:PATH ("" for none)`)
	f.BoolVar(&cfg.Ditto.Enabled, "ditto", false, "publish the CAN state as Ditto features over Kanto's local MQTT broker (off by default)")
	f.StringVar(&cfg.Ditto.Broker, "mqtt-broker", cfg.Ditto.Broker, "with --ditto: the local MQTT broker (Kanto's mosquitto)")
	f.StringVar(&cfg.Ditto.ClientID, "mqtt-client-id", cfg.Ditto.ClientID, "with --ditto: the MQTT client id")
	f.StringVar(&cfg.Ditto.ThingID, "thing-id", cfg.Ditto.ThingID, `with --ditto: the thing's id, NAMESPACE:NAME ("": ask suite-connector on edge/thing/request)`)
	f.DurationVar(&cfg.Ditto.Poll, "ditto-poll", cfg.Ditto.Poll, "with --ditto: how often to look for changes no event reports (a controller's error state)")
	f.StringVar(&logFormat, "log-format", logFormat, "log format: text or json (both one record per line, on stderr)")
	f.StringVar(&logLevel, "log-level", logLevel, "log level: debug, info, warn or error")
	return cmd
}

// dittoFlags take effect only with --ditto.
var dittoFlags = []string{"mqtt-broker", "mqtt-client-id", "thing-id", "ditto-poll"}

// prepare checks the flags and completes cfg. A flag that cannot take
// effect (a Ditto flag without --ditto, --namespace without containerd)
// or cannot be right (a negative interval, a policy file named that does
// not exist) is refused: the daemon would otherwise start as if all were
// well. The daemon logs the policy in force itself (an invalid file too:
// its cleanup and metrics go on meanwhile).
func prepare(cmd *cobra.Command, cfg *daemon.Config, namespaces, logFormat, logLevel string) error {
	log, err := newLogger(logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Log = log
	for _, name := range dittoFlags {
		if cmd.Flags().Changed(name) && !cfg.Ditto.Enabled {
			return fmt.Errorf("--%s takes effect only with --ditto", name)
		}
	}
	if cfg.Ditto.Enabled {
		if err := cfg.Ditto.Validate(); err != nil {
			return err
		}
	}
	if cfg.AuditInterval < 0 {
		return fmt.Errorf("--audit-interval %v: negative (0 turns the audit off)", cfg.AuditInterval)
	}
	if cmd.Flags().Changed("namespace") && cfg.Containerd == "" {
		return errors.New(`--namespace takes effect only with --containerd-address (it is "": containerd is not watched)`)
	}
	cfg.Namespaces = nil
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			cfg.Namespaces = append(cfg.Namespaces, ns)
		}
	}
	if cfg.Containerd != "" && len(cfg.Namespaces) == 0 {
		return fmt.Errorf("--namespace %q: no namespace to watch (--containerd-address \"\" to not watch containerd)", namespaces)
	}
	cfg.PolicyExplicit = cmd.Flags().Changed("config")
	if _, err := policy.Describe(cfg.Policy, cfg.PolicyExplicit); cfg.PolicyExplicit && errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--config: %w", err)
	}
	return nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
