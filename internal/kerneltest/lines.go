package kerneltest

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// Exited is the line a process's log ends with (StartLogged, the
// benchmarks' daemon log): awaits can stop at it.
const Exited = "<exited>"

// Lines is a growing list of strings (log lines, messages) that tests
// await.
type Lines struct {
	mu      sync.Mutex
	all     []string
	changed chan struct{}
}

// NewLines makes an empty list.
func NewLines() *Lines { return &Lines{changed: make(chan struct{})} }

// Add appends s and wakes those who await.
func (l *Lines) Add(s string) {
	l.mu.Lock()
	l.all = append(l.all, s)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Len is how many lines there are: an index to await from.
func (l *Lines) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// Slice is lines [from, to).
func (l *Lines) Slice(from, to int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all[from:to]...)
}

// Text is every line so far.
func (l *Lines) Text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// Await returns the first line from index from on that ok accepts.
func (l *Lines) Await(tb testing.TB, from int, timeout time.Duration, ok func(string) bool) string {
	tb.Helper()
	s, _ := l.AwaitIndex(tb, from, timeout, ok)
	return s
}

// AwaitIndex is Await, with the line's index.
func (l *Lines) AwaitIndex(tb testing.TB, from int, timeout time.Duration, ok func(string) bool) (string, int) {
	tb.Helper()
	deadline := time.After(timeout)
	for i := from; ; {
		l.mu.Lock()
		for ; i < len(l.all); i++ {
			if ok(l.all[i]) {
				s := l.all[i]
				l.mu.Unlock()
				return s, i
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			tb.Fatalf("not seen within %v; the last lines:\n%s", timeout, strings.Join(l.Slice(max(0, l.Len()-20), l.Len()), "\n"))
		}
	}
}
