package target

import (
	"errors"
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	const line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615\n"
	start, err := parseStat([]byte(line))
	if err != nil || start != 98765 {
		t.Fatalf("parseStat = %d, %v; want 98765", start, err)
	}
	zombie := "1234 (x) Z 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 0 0\n"
	if _, err := parseStat([]byte(zombie)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("zombie: err = %v, want os.ErrNotExist", err)
	}
	if _, err := parseStat([]byte("1234 (x) S 1 2")); err == nil {
		t.Fatal("short line: no error")
	}
}

func TestProcessStartSelf(t *testing.T) {
	a, err := ProcessStart(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("ProcessStart(self) = %d, %v", a, err)
	}
	if b, _ := ProcessStart(os.Getpid()); b != a {
		t.Fatalf("start time changed: %d then %d", a, b)
	}
	if _, err := ProcessStart(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no such pid: err = %v", err)
	}
}
