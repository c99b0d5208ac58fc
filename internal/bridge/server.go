package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Server is the daemon's side: it keeps one Bridge per bridged attachment
// and answers Ask.
type Server struct {
	// Load reads an attachment's record as a Spec.
	Load func(key string) (Spec, error)
	// Ended, if set, is told of a bridge that ended by itself (its vcan
	// went), not by Up or Close.
	Ended func(key string)
	// DeleteInside, if set, deletes a stopped bridge's vcan in the
	// namespace nsFD.
	DeleteInside func(nsFD int, spec Spec) error
	Log          *slog.Logger

	ln      net.Listener
	mu      sync.Mutex
	bridges map[string]*Bridge
}

// Listen opens the server's socket in dir (the records' directory), in
// place of one a previous daemon left.
func Listen(dir string, load func(string) (Spec, error), log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return &Server{Load: load, Log: log, ln: ln, bridges: map[string]*Bridge{}}, nil
}

// Serve answers Ask until ctx is done, then stops every bridge.
func (s *Server) Serve(ctx context.Context) error {
	go func() { <-ctx.Done(); s.ln.Close() }()
	defer s.closeAll()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go s.answer(c)
	}
}

func (s *Server) answer(c net.Conn) {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	op, key, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch op {
	case "up":
		err = s.Up(key)
	case "down":
		s.Down(key)
	default:
		err = fmt.Errorf("unknown request %q", op)
	}
	reply := "ok\n"
	if err != nil {
		reply = "error: " + err.Error() + "\n"
	}
	c.Write([]byte(reply))
}

// Down stops the bridge of key, if there is one, and deletes its vcan: the
// attachment is removed, and whoever removed it may no longer reach the
// container's namespace (the container's process gone while the namespace
// lives on), which the bridge's own socket still names.
func (s *Server) Down(key string) {
	s.mu.Lock()
	b := s.bridges[key]
	delete(s.bridges, key)
	s.mu.Unlock()
	if b == nil {
		return
	}
	if s.DeleteInside != nil {
		if ns, err := b.netNS(); err == nil {
			if err := s.DeleteInside(ns, b.spec); err != nil {
				s.Log.Warn("bridge stopped", "record", key, "err", err)
			}
			unix.Close(ns)
		}
	}
	b.Close()
	s.Log.Info("bridge stopped", "record", key)
}

// Up bridges the attachment recorded as key, in place of its bridge if it
// has one (its grant may have changed).
func (s *Server) Up(key string) error {
	spec, err := s.Load(key)
	if err != nil {
		return err
	}
	b, err := open(spec)
	if err != nil {
		return fmt.Errorf("bridge %s -> %s: %w", spec.HostBus, spec.Inside, err)
	}
	s.mu.Lock()
	old := s.bridges[key]
	s.bridges[key] = b
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go s.forgetWhenDone(key, b)
	s.Log.Info("bridging", "record", key, "bus", spec.HostBus, "inside", spec.Inside, "netns", spec.NetNS)
	return nil
}

// forgetWhenDone drops b once its container side has ended, and closes
// it (its bus side too).
func (s *Server) forgetWhenDone(key string, b *Bridge) {
	<-b.Done()
	b.Close()
	s.mu.Lock()
	ended := s.bridges[key] == b
	if ended {
		delete(s.bridges, key)
	}
	s.mu.Unlock()
	if ended {
		s.Log.Info("bridge ended", "record", key)
		if s.Ended != nil {
			s.Ended(key)
		}
	}
}

// BusChanged opens the host side of the bridges whose bus was away.
func (s *Server) BusChanged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, b := range s.bridges {
		if err := b.openHost(); err == nil {
			continue
		} else if !isNoDevice(err) {
			s.Log.Warn("bridge", "record", key, "err", err)
		}
	}
}

// Status is one bridge's state, for metrics and listings.
type Status struct {
	Key     string
	HostBus string
	Inside  string
	BusUp   bool // the host side is open
	Counters
}

// List returns the bridges, sorted by key.
func (s *Server) List() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.bridges))
	for key, b := range s.bridges {
		b.mu.Lock()
		up := b.host != nil
		b.mu.Unlock()
		out = append(out, Status{Key: key, HostBus: b.spec.HostBus, Inside: b.spec.Inside, BusUp: up, Counters: b.Counters()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s *Server) closeAll() {
	s.mu.Lock()
	bs := s.bridges
	s.bridges = map[string]*Bridge{}
	s.mu.Unlock()
	for _, b := range bs {
		b.Close()
	}
}
