package daemon

import (
	"log/slog"
	"sync"

	"github.com/kanto-can/kanto-can/internal/ditto"
	"github.com/kanto-can/kanto-can/internal/policy"
)

// policyWatch reads the admin's policy (the file the hooks apply) whenever
// the daemon reports it: at start, at each reconcile, scrape and Ditto
// read. The hooks read the file at every container start, so an edit takes
// effect without the daemon; what the daemon reports follows it. Each new
// state is logged once: no file at warn level (every container may use
// every bus, both ways, with no rate limit), an unreadable or invalid one
// at error level.
type policyWatch struct {
	path     string
	explicit bool
	log      *slog.Logger

	mu     sync.Mutex
	logged string // the state last logged
}

// read describes the policy in force now, logging it if it changed.
func (w *policyWatch) read() (policy.InForce, error) {
	in, err := policy.Describe(w.path, w.explicit)
	state := in.String()
	if err != nil {
		state = err.Error()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if state == w.logged {
		return in, err
	}
	w.logged = state
	switch {
	case err != nil:
		w.log.Error("policy: cannot be read: hooks refuse every container that asks for CAN until it is fixed", "err", err)
	case !in.Present:
		w.log.Warn("policy: none: any container that asks gets any bus, both ways, every id, no rate limit", "path", in.Path)
	default:
		w.log.Info("policy", "path", in.Path, "sha256", in.SHA256, "buses", in.Buses, "containers", in.Containers, "default", in.Default)
	}
	return in, err
}

// status is read's answer for CANManager.
func (w *policyWatch) status() *ditto.PolicyStatus {
	in, err := w.read()
	s := &ditto.PolicyStatus{InForce: in}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}
