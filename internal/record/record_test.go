package record

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/request"
)

func TestWriteListRemove(t *testing.T) {
	dir := t.TempDir()
	r := Record{HostEnd: "kcan0123456789a", Target: "netns:1", Label: "container app", Container: "app",
		Bus: "can0,dir=both,fd=auto,rx=7DF", TxRate: &request.Rate{FramesPerSecond: 100, Burst: 10}}
	if err := Write(dir, r); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := Get(dir, r.HostEnd); err != nil || !ok || got.Bus != r.Bus {
		t.Fatalf("Get = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := Get(dir, "kcan00000000000"); err != nil || ok {
		t.Fatalf("Get of a missing record = %v, %v", ok, err)
	}
	list, err := List(dir)
	if err != nil || len(list) != 1 || list[0].Bus != r.Bus || *list[0].TxRate != *r.TxRate {
		t.Fatalf("List = %+v, %v", list, err)
	}
	b, err := list[0].Request()
	if err != nil || b.Host != "can0" || b.RX == nil || b.TxRate == nil {
		t.Fatalf("Request = %+v, %v", b, err)
	}
	if err := Remove(dir, r.HostEnd); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, r.HostEnd); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if list, _ := List(dir); len(list) != 0 {
		t.Fatalf("after Remove: %+v", list)
	}
	if list, err := List(dir + "/nosuch"); err != nil || list != nil {
		t.Fatalf("missing dir: %v, %v", list, err)
	}
}

// Many writers at once (containers starting together): every record is
// whole and none is lost.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ { // rewrites of the same record too
				if err := Write(dir, Record{HostEnd: fmt.Sprintf("kcan%011d", i), Bus: fmt.Sprintf("can%d", j%3)}); err != nil {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()
	list, err := List(dir)
	if err != nil || len(list) != 50 {
		t.Fatalf("%d records, %v", len(list), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 50 {
		t.Fatalf("%d files: temporary files left", len(entries))
	}
}

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := Lock(dir) // a second descriptor: blocks like another process would
		if err != nil {
			t.Error(err)
		} else {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second Lock succeeded while the first was held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	<-got
	if list, err := List(dir); err != nil || len(list) != 0 {
		t.Fatalf("the lock file shows up as a record: %v, %v", list, err)
	}
}

// A lock held for longer than the bound (a stuck holder) gives an error
// naming the holder, instead of hanging a container's start; the abandoned
// wait releases the lock once it gets it, so the next Lock succeeds.
func TestLockIsBounded(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockWithin(dir, 50*time.Millisecond) // a second descriptor: like another process
	want := fmt.Sprintf("has been locked for over 50ms by pid %d (", os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("lock held: %v, want an error with %q", err, want)
	}
	unlock()
	u, err := lockWithin(dir, 5*time.Second)
	if err != nil {
		t.Fatalf("after the holder released it: %v", err)
	}
	u()
}

// A record is readable by anyone (ls and top run as users list bridged
// attachments from the records; the same facts are in the kernel).
func TestRecordsAreReadable(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Record{HostEnd: "kcan0123456789a", Target: "netns:1", Bus: "can0"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "kcan0123456789a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o644 {
		t.Errorf("record file mode %v, want -rw-r--r--", mode)
	}
}
