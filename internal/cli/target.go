package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/kanto"
	"github.com/kanto-can/kanto-can/internal/record"
	"github.com/kanto-can/kanto-can/internal/target"
)

// recordsDir is where attachments are recorded (a variable for tests).
var recordsDir = record.DefaultDir

// targetFlags are the ways to name the container to work on: a Kanto
// container name or id (the command's argument), a pid or a netns path.
type targetFlags struct {
	pid        int
	netns      string
	containerd target.Containerd
}

func (f *targetFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.pid, "pid", 0, "a process of the container (its network namespace is used)")
	cmd.Flags().StringVar(&f.netns, "netns", "", "path of the container's network namespace (e.g. /run/netns/NAME)")
	registerContainerd(cmd, &f.containerd)
}

// registerContainerd adds the flags that say where to find CONTAINER.
func registerContainerd(cmd *cobra.Command, c *target.Containerd) {
	*c = target.DefaultContainerd
	cmd.Flags().StringVar(&c.Namespace, "namespace", c.Namespace, "containerd namespace of CONTAINER")
	cmd.Flags().StringVar(&c.StateDir, "containerd-state", c.StateDir, "containerd's state directory")
	cmd.Flags().StringVar(&c.Kanto.Dir, "kanto-meta", c.Kanto.Dir, "Kanto's container records (to find CONTAINER by name)")
}

// registerKanto adds --kanto-meta to a command that only shows names.
func registerKanto(cmd *cobra.Command, k *kanto.Store) {
	*k = kanto.DefaultStore
	cmd.Flags().StringVar(&k.Dir, "kanto-meta", k.Dir, "Kanto's container records (to show containers by their Kanto names)")
}

func (f *targetFlags) open(cmd *cobra.Command, args []string) (*target.Target, error) {
	given := 0
	for _, set := range []bool{len(args) > 0, cmd.Flags().Changed("pid"), cmd.Flags().Changed("netns")} {
		if set {
			given++
		}
	}
	switch {
	case given > 1:
		return nil, errors.New("name the container one way: CONTAINER, --pid or --netns")
	case len(args) > 0:
		return target.FromContainer(f.containerd, args[0])
	case cmd.Flags().Changed("pid"):
		return target.FromPID(f.pid)
	case cmd.Flags().Changed("netns"):
		return target.FromPath(f.netns)
	}
	return nil, errors.New("no target: give a Kanto CONTAINER name or id, --pid PID or --netns PATH")
}

// run opens the target and the host's netlink sockets, calls fn, and
// closes both.
func (f *targetFlags) run(cmd *cobra.Command, args []string, fn func(*target.Target, *attach.Host) error) error {
	t, err := f.open(cmd, args)
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

// knownContainer returns the id of the container ref names, by Kanto name or
// id, running or not, or an error when ref names nothing kanto-can could
// have attached: no Kanto record, no containerd task and no recorded
// attachment. A typo would otherwise list or detach nothing, exit 0. A
// container whose process and task are gone is still known by its records.
func knownContainer(c target.Containerd, ref string) (string, error) {
	if !kanto.ValidRef(ref) {
		return "", fmt.Errorf("container %q: not a container name or id", ref)
	}
	rec, err := c.Kanto.Find(ref)
	switch {
	case err == nil:
		return rec.ID, nil
	case !errors.Is(err, kanto.ErrNotFound):
		return "", fmt.Errorf("container %s: %w", ref, err)
	}
	if _, err := os.Stat(c.TaskDir(ref)); err == nil {
		return ref, nil
	}
	recs, err := record.List(recordsDir)
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.Container == ref {
			return ref, nil
		}
	}
	return "", fmt.Errorf("container %s: no such container: no Kanto container has this name or id (%s), containerd namespace %s has no task %s, and nothing is attached for it", ref, c.Kanto.Dir, c.Namespace, ref)
}
