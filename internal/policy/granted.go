package policy

import (
	"slices"

	"github.com/kanto-can/kanto-can/internal/request"
)

// Granted is what a container may have of what it asked: the requested
// buses, each checked and narrowed by the policy. Only Resolve makes one,
// and attaching (attach.Host.Attach) takes nothing else, so no way in (the
// CLI, the hook, the CNI plugin, a front end yet to come) can attach a
// request the policy did not see.
type Granted struct {
	buses []request.Bus
}

// Buses are the granted buses, in the order asked.
func (g Granted) Buses() []request.Bus { return slices.Clone(g.buses) }

// Len is how many buses are granted.
func (g Granted) Len() int { return len(g.buses) }
