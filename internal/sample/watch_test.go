package sample

import (
	"testing"
	"time"

	"github.com/kanto-can/kanto-can/internal/attach"
)

// A gone attachment stays in view for Keep, then leaves it.
func TestWatchKeepsGone(t *testing.T) {
	w := Watch{Keep: 3 * time.Second}
	at := func(sec int, list ...attach.Attachment) Sample {
		return Sample{Time: t0.Add(time.Duration(sec) * time.Second), Attachments: list}
	}
	a, b := att("kcana", 1, "a", 10, 0, 0), att("kcanb", 2, "b", 0, 0, 0)
	if _, ok := w.Next(at(0, a, b)); ok {
		t.Fatal("first sample gave a view")
	}
	gone := func(v View) (names string) {
		for _, x := range v.Attachments {
			if x.Gone {
				names += x.Name
			}
		}
		return names
	}
	for _, tc := range []struct {
		sec  int
		want string
	}{{1, "a"}, {2, "a"}, {4, "a"}, {5, ""}} {
		v, ok := w.Next(at(tc.sec, b))
		if !ok || gone(v) != tc.want || len(v.Attachments) != 1+len(tc.want) {
			t.Fatalf("at %ds: gone %q, want %q (%+v)", tc.sec, gone(v), tc.want, v.Attachments)
		}
	}
}
