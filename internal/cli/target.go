package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/target"
)

// targetFlags are the ways to name the container to work on.
type targetFlags struct {
	pid   int
	netns string
}

func (f *targetFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.pid, "pid", 0, "a process of the container (its network namespace is used)")
	cmd.Flags().StringVar(&f.netns, "netns", "", "path of the container's network namespace (e.g. /run/netns/NAME)")
}

func (f *targetFlags) open(cmd *cobra.Command) (*target.Target, error) {
	pidSet, nsSet := cmd.Flags().Changed("pid"), cmd.Flags().Changed("netns")
	switch {
	case pidSet && nsSet:
		return nil, errors.New("give either --pid or --netns, not both")
	case pidSet:
		return target.FromPID(f.pid)
	case nsSet:
		return target.FromPath(f.netns)
	}
	return nil, errors.New("no target: give --pid PID or --netns PATH")
}

// run opens the target and the host's netlink sockets, calls fn, and
// closes both.
func (f *targetFlags) run(cmd *cobra.Command, fn func(*target.Target, *attach.Host) error) error {
	t, err := f.open(cmd)
	if err != nil {
		return err
	}
	defer t.Close()
	h, err := attach.OpenHost()
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(t, h)
}
