package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/bridge"
	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/kanto"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/record"
)

// Config says what the daemon watches and where it reports.
type Config struct {
	// Records is the directory of the attachments' records.
	Records string
	// Containerd is the address of containerd's socket; "" does not
	// watch containerd.
	Containerd string
	// Namespaces are the containerd namespaces whose containers are
	// watched (Kanto's is kanto-cm; the CRI's, where pods live, k8s.io;
	// Docker's, moby).
	Namespaces []string
	// Policy is the admin's policy file the hooks apply, which the daemon
	// reports (log, metrics, CANManager); PolicyExplicit: named by the
	// admin, so it must exist (policy.Open's rule).
	Policy         string
	PolicyExplicit bool
	// Metrics is where Prometheus metrics are served: HOST:PORT, or
	// unix:PATH for a unix socket; "" serves none.
	Metrics string
	// Kanto is where Kanto keeps its container records: metrics name
	// containers by their Kanto names.
	Kanto kanto.Store
	// AuditInterval is how often the gateway rules of our host ends are
	// counted, to notice rules removed by another tool; 0 never.
	AuditInterval time.Duration
	// Ditto publishes the CAN state as Ditto features over Kanto's local
	// MQTT broker (package ditto); off unless Enabled.
	Ditto DittoConfig
	Log   *slog.Logger
}

// DefaultConfig is the configuration of a daemon on a Kanto device.
func DefaultConfig() Config {
	return Config{
		Records:       record.DefaultDir,
		Containerd:    "/run/containerd/containerd.sock",
		Namespaces:    []string{"kanto-cm", "k8s.io", "moby"},
		Policy:        policy.DefaultPath,
		Metrics:       "127.0.0.1:9731",
		Kanto:         kanto.DefaultStore,
		AuditInterval: DefaultAuditInterval,
		Ditto:         DittoConfig{Broker: ditto.DefaultBroker, ClientID: ditto.DefaultClientID, Poll: ditto.DefaultPoll},
		Log:           slog.Default(),
	}
}

// Daemon is a running daemon.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	host    *attach.Host
	metrics *metrics
	// ditto publishes the state as Ditto features; nil when off.
	ditto *ditto.Agent
	// policy reports the policy in force; audited is the rule audit's
	// failure; containerd the subscription to containerd's events.
	policy     *policyWatch
	audited    condition
	containerd containerdLink
	// bridges carries the frames of bridged attachments (bridge mode).
	bridges *bridge.Server
	// retry is the first wait before containerd is tried again (250ms).
	retry time.Duration
	// The next reconcile: why, and what it must look at. kick wakes the
	// reconcile loop.
	mu      sync.Mutex
	pending []string
	scope   attach.Scope
	kick    chan struct{}
}

// Run runs the daemon until ctx is done. It returns an error if it cannot
// start (no netlink, metrics address taken) or a watch fails for good.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// Sockets in the poller, as the daemon's others. Not closed under a
	// running reconcile: its rollback needs them.
	host, err := attach.OpenHost(attach.WithPoll(), attach.WithRecords(cfg.Records))
	if err != nil {
		return err
	}
	defer host.Close()
	// Bridge mode's socket, open before the first reconcile, so that a
	// hook that asks meanwhile waits rather than finds no daemon.
	bridges, err := bridge.Listen(cfg.Records, loadBridge(cfg.Records), cfg.Log)
	if err != nil {
		return fmt.Errorf("bridge socket: %w", err)
	}
	d := &Daemon{cfg: cfg, log: cfg.Log, host: host, kick: make(chan struct{}, 1), bridges: bridges,
		policy: &policyWatch{path: cfg.Policy, explicit: cfg.PolicyExplicit, log: cfg.Log}}
	d.metrics = newMetrics(metricsSource{open: openHost(cfg.Records), names: cfg.Kanto.Names,
		policy: d.policy.read, bridges: bridges.List, containerd: cfg.Containerd != "", log: cfg.Log})
	// At start, whatever it is: no policy is a warning.
	d.policy.read()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5)
	if cfg.Ditto.Enabled {
		if err := d.startDitto(ctx); err != nil {
			return err
		}
	}

	// Subscribe to link events before the first reconcile, so that no
	// change falls between the two.
	links, err := watchLinks()
	if err != nil {
		return err
	}
	go func() { errc <- d.followLinks(ctx, links) }()
	if cfg.Containerd != "" {
		go d.followContainerd(ctx)
	} else {
		d.log.Info("not watching containerd (--containerd-address \"\"): attachments of containers that exit without their poststop hook stay until the next reconcile")
	}
	if cfg.Metrics != "" {
		ln, err := listen(cfg.Metrics)
		if err != nil {
			return fmt.Errorf("metrics address %s: %w", cfg.Metrics, err)
		}
		go func() { errc <- d.serveMetrics(ctx, ln) }()
	}

	bridges.Ended, bridges.DeleteInside = d.bridgeEnded, attach.DeleteBridgedVCAN
	go func() { errc <- d.bridges.Serve(ctx) }()
	d.reconcile("start", attach.Scope{Full: true})
	d.restoreBridges()
	if cfg.AuditInterval > 0 {
		go func() { errc <- d.auditRules(ctx, cfg.AuditInterval) }()
	}
	d.log.Info("ready", "records", cfg.Records, "containerd", cfg.Containerd,
		"namespaces", strings.Join(cfg.Namespaces, ","), "metrics", cfg.Metrics, "ditto", cfg.Ditto.Enabled)
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-d.kick:
			d.mu.Lock()
			why, scope := d.pending, d.scope
			d.pending, d.scope = nil, attach.Scope{}
			d.mu.Unlock()
			if len(why) > 0 {
				d.reconcile(strings.Join(why, ", "), scope)
			}
		}
	}
}

// loadBridge reads a bridged attachment's record as the bridge's Spec.
func loadBridge(dir string) func(string) (bridge.Spec, error) {
	return func(key string) (bridge.Spec, error) {
		if !strings.HasPrefix(key, attach.HostEndPrefix) || strings.ContainsAny(key, "/.") {
			return bridge.Spec{}, fmt.Errorf("%q is not the name of an attachment's record", key)
		}
		rec, ok, err := record.Get(dir, key)
		if err != nil {
			return bridge.Spec{}, err
		}
		if !ok {
			return bridge.Spec{}, fmt.Errorf("no record %s", key)
		}
		return attach.BridgeSpec(rec)
	}
}

// restoreBridges bridges every recorded bridged attachment again: the
// daemon's own restart (the kernel keeps the containers' vcans, not the
// daemon's sockets).
func (d *Daemon) restoreBridges() {
	recs, err := record.List(d.cfg.Records)
	if err != nil {
		d.log.Warn("bridges", "err", err)
		return
	}
	for _, rec := range recs {
		if rec.Bridge == nil {
			continue
		}
		if err := d.bridges.Up(rec.HostEnd); err != nil {
			d.log.Warn("bridge not restored", "record", rec.HostEnd, "err", err)
		}
	}
}

// bridgeEnded forgets a bridged attachment whose vcan went.
func (d *Daemon) bridgeEnded(key string) {
	removed, err := d.host.BridgeEnded(key)
	switch {
	case err != nil:
		d.log.Warn("bridge ended", "record", key, "err", err)
	case removed:
		d.log.Info("reconciled", "why", "bridge ended", "removed", key)
		d.kickDitto()
	}
}

// request asks for a reconcile of scope; requests made before it starts
// are merged.
func (d *Daemon) request(why string, scope attach.Scope) {
	d.mu.Lock()
	if !slices.Contains(d.pending, why) {
		d.pending = append(d.pending, why)
	}
	d.scope.Merge(scope)
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// kickDitto asks the Ditto features for a new look, when they are on.
func (d *Daemon) kickDitto() {
	if d.ditto != nil {
		d.ditto.Kick()
	}
}

func (d *Daemon) reconcile(why string, scope attach.Scope) {
	if d.policy != nil {
		d.policy.read() // logs an edit of the policy file
	}
	rep, err := d.host.Reconcile(scope)
	d.metrics.reconciled(rep, err)
	if err != nil {
		d.log.Warn("reconcile", "why", why, "err", err)
	}
	if d.ditto != nil {
		d.ditto.ReportError(err)
		d.ditto.Kick()
	}
	if rep.Changed() {
		// Host ends comma-separated, and only the kinds of change made: one
		// grep-able token each (restored=kcan1,kcan2).
		attrs := []any{"why", why}
		for _, c := range []struct {
			key  string
			ends []string
		}{{"restored", rep.Restored}, {"removed", rep.Removed}, {"forgotten", rep.Forgotten}} {
			if len(c.ends) > 0 {
				attrs = append(attrs, c.key, strings.Join(c.ends, ","))
			}
		}
		d.log.Info("reconciled", attrs...)
	} else {
		d.log.Debug("reconciled", "why", why)
	}
}

// listen opens the metrics listener: unix:PATH or HOST:PORT.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return nil, errors.New("metrics address unix: needs a path")
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}
