package sample

import (
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
)

// Sample is one reading of the kernel: the host buses that have
// attachments of ours, with their counters, and the attachments with their
// gateway rules' and rate limits' counters.
type Sample struct {
	Time        time.Time
	Buses       []attach.HostBusStatus
	Attachments []attach.Attachment
}

// Take reads a sample through h. Containers are named by h.Names.
func Take(h *attach.Host) (Sample, error) {
	list, err := h.List()
	if err != nil {
		return Sample{}, err
	}
	buses, err := h.HostBuses()
	if err != nil {
		return Sample{}, err
	}
	return Sample{Time: time.Now(), Buses: buses, Attachments: list}, nil
}
