package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// daemonBinary is the daemon's own binary. It is separate so that its
// libraries (gRPC, Prometheus) do not slow down every start of this one.
const daemonBinary = "kanto-can-daemon"

func newDaemon() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon [flags]",
		Short: "Run kanto-can-daemon: keep attachments routed, clean up, serve metrics",
		Long: `Run kanto-can-daemon (installed next to kanto-can, or on PATH) with the
given flags: it puts rules back when a bus comes back, removes what is left
of containers that are gone, and serves Prometheus metrics. See
kanto-can-daemon --help. The global --config (kanto-can --config FILE
daemon) is passed on as the daemon's own --config.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findDaemon()
			if err != nil {
				return err
			}
			global := cmd.Root().PersistentFlags().Lookup("config")
			args = daemonArgs(global.Value.String(), global.Changed, args)
			return syscall.Exec(path, append([]string{path}, args...), os.Environ())
		},
	}
}

// daemonArgs are the daemon's arguments: args, after the global --config
// when it was given (the global flag is parsed before this command, so
// the daemon would otherwise never see it; one of its own in args wins,
// being later).
func daemonArgs(config string, given bool, args []string) []string {
	if !given {
		return args
	}
	return append([]string{"--config", config}, args...)
}

func findDaemon() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), daemonBinary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(daemonBinary)
	if err != nil {
		return "", fmt.Errorf("daemon: %s is neither next to this binary nor on PATH", daemonBinary)
	}
	return p, nil
}
