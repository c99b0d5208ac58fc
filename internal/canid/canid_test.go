package canid

import (
	"math/rand"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in      string
		id      uint32
		ext     bool
		wantErr string
	}{
		{in: "7DF", id: 0x7DF},
		{in: "0x123", id: 0x123},
		{in: "1", id: 1},
		{in: "18DAF110", id: 0x18DAF110, ext: true},
		{in: "00000123", id: 0x123, ext: true},
		{in: "800", wantErr: "beyond the 11-bit range"},
		{in: "20000000", wantErr: "beyond the 29-bit range"},
		{in: "12345", wantErr: "has 5 hex digits"},
		{in: "xyz", wantErr: "not a hexadecimal"},
		{in: "", wantErr: "empty id"},
		{in: "0x", wantErr: "empty id"},
	} {
		id, ext, err := ParseID(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseID(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || id != tc.id || ext != tc.ext {
			t.Errorf("ParseID(%q) = %x,%v,%v; want %x,%v", tc.in, id, ext, err, tc.id, tc.ext)
		}
	}
}

func TestParseItemErrors(t *testing.T) {
	for in, want := range map[string]string{
		"10F-100":      "empty",
		"100-18DAF110": "mixes",
		"100/1FFFFFFF": "same width",
		"100/zz":       "mask",
		"100-":         "empty id",
	} {
		if _, err := ParseItem(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseItem(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		list string
		want []Filter
	}{
		{"7DF", []Filter{{ID: 0x7DF, Mask: 0x7FF | EFFFlag | RTRFlag}}},
		{"100-10F", []Filter{{ID: 0x100, Mask: 0x7F0 | EFFFlag | RTRFlag}}},
		{"700/7F0", []Filter{{ID: 0x700, Mask: 0x7F0 | EFFFlag | RTRFlag}}},
		{"000-7FF", []Filter{{ID: 0, Mask: EFFFlag | RTRFlag}}},
		{"101-102", []Filter{{ID: 0x101, Mask: 0x7FF | EFFFlag | RTRFlag}, {ID: 0x102, Mask: 0x7FF | EFFFlag | RTRFlag}}},
		// overlapping and adjacent ranges merge before compiling
		{"100-107,105-10F,110", []Filter{{ID: 0x100, Mask: 0x7F0 | EFFFlag | RTRFlag}, {ID: 0x110, Mask: 0x7FF | EFFFlag | RTRFlag}}},
		{"18DAF110", []Filter{{ID: 0x18DAF110 | EFFFlag, Mask: EFFMask | EFFFlag | RTRFlag}}},
		{"100/701", []Filter{{ID: 0x100, Mask: 0x701 | EFFFlag | RTRFlag}}},
	} {
		l, err := ParseList(tc.list)
		if err != nil {
			t.Fatalf("ParseList(%q): %v", tc.list, err)
		}
		got, err := l.Filters()
		if err != nil {
			t.Fatalf("%q: Filters: %v", tc.list, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%q: Filters = %v, want %v", tc.list, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: filter %d = %v, want %v", tc.list, i, got[i], tc.want[i])
			}
		}
	}
}

func TestFiltersExactOnFastPath(t *testing.T) {
	l, _ := ParseList("7DF,18DAF110")
	fs, _ := l.Filters()
	for _, f := range fs {
		if !exact(f) {
			t.Errorf("%v: want the kernel's O(1) exact-id mask", f)
		}
	}
}

func TestFiltersOverlappingMaskIsAnError(t *testing.T) {
	l, err := ParseList("100/701,100-1FF")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Filters(); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("Filters error = %v, want overlap", err)
	}
}

// match is the kernel's filter test (net/can/af_can.c) for a data frame.
func match(f Filter, id uint32, ext bool) bool {
	canID := id
	if ext {
		canID |= EFFFlag
	}
	return canID&f.Mask == f.ID&f.Mask
}

// For random lists, the compiled filters match exactly the listed ids, and
// never two filters the same id.
func TestFiltersMatchExactlyTheList(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for n := 0; n < 300; n++ {
		var items []string
		for k := 0; k < 1+r.Intn(6); k++ {
			a, b := uint32(r.Intn(0x800)), uint32(r.Intn(0x800))
			if a > b {
				a, b = b, a
			}
			items = append(items, Item{Lo: a, Hi: b}.String())
		}
		l, err := ParseList(strings.Join(items, ","))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := l.Filters()
		if err != nil {
			t.Fatal(err)
		}
		for id := uint32(0); id <= SFFMask; id++ {
			hits := 0
			for _, f := range fs {
				if match(f, id, false) {
					hits++
				}
			}
			want := 0
			if l.Matches(id, false) {
				want = 1
			}
			if hits != want {
				t.Fatalf("list %s: id %03X matched by %d filters, want %d (%v)", l, id, hits, want, fs)
			}
			if match(fs[0], id, true) {
				t.Fatalf("standard filter %v matches extended id %X", fs[0], id)
			}
		}
	}
}

func TestExtendedRangeBlocks(t *testing.T) {
	l, _ := ParseList("18DA0000-18DAFFFF")
	fs, err := l.Filters()
	if err != nil || len(fs) != 1 || fs[0] != (Filter{ID: 0x18DA0000 | EFFFlag, Mask: 0x1FFF0000 | EFFFlag | RTRFlag}) {
		t.Fatalf("Filters = %v, %v", fs, err)
	}
	l, _ = ParseList("00000000-1FFFFFFF")
	fs, _ = l.Filters()
	if len(fs) != 1 || !match(fs[0], 0x1ABCDEF, true) || match(fs[0], 0x123, false) {
		t.Fatalf("full extended range = %v", fs)
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"7DF", "100-10F,7E8", "18DAF110", "700/7F0", "0x100-0x1FF", "100/701,200", "00000000-1FFFFFFF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseList(s)
		if err != nil {
			return
		}
		// What parses re-parses from its own printed form to the same list.
		again, err := ParseList(l.String())
		if err != nil {
			t.Fatalf("ParseList(%q) ok but its String %q fails: %v", s, l.String(), err)
		}
		if again.String() != l.String() {
			t.Fatalf("round trip %q -> %q -> %q", s, l.String(), again.String())
		}
		fs, err := l.Filters()
		if err != nil {
			return
		}
		for _, it := range l.Items {
			id, ext := it.Lo, it.Extended
			if it.Mask != 0 {
				id = it.ID
			}
			hits := 0
			for _, f := range fs {
				if match(f, id, ext) {
					hits++
				}
			}
			if hits != 1 {
				t.Fatalf("%q: id %X matched by %d filters", s, id, hits)
			}
		}
	})
}

func TestUncovered(t *testing.T) {
	for _, tc := range []struct{ granted, req, want string }{
		{"100-10F", "100-10F", ""},
		{"100-10F", "105", ""},
		{"100-10F", "100-1FF", "110-1FF"},
		{"100-10F,120-12F", "100-13F", "110-11F,130-13F"},
		{"7DF,7E8", "7DF,7E0", "7E0"},
		{"000-7FF", "100/701", ""},
		{"100-1FF", "100/701", ""},
		{"100-17F", "100/701", "100/701"},
		{"18DA0000-18DAFFFF", "18DAF110", ""},
		{"7DF", "18DAF110", "18DAF110"},
		{"18DA0000/1FFF00FF", "18DA0000/1FFF00FF", ""},
	} {
		g, _ := ParseList(tc.granted)
		r, _ := ParseList(tc.req)
		if got := g.Uncovered(r).String(); got != tc.want {
			t.Errorf("granted %s, request %s: uncovered %q, want %q", tc.granted, tc.req, got, tc.want)
		}
	}
}

// The arithmetic the policy and the planner share: two filters overlap
// when some id matches both, and their intersection matches exactly those.
func TestOverlapAndIntersect(t *testing.T) {
	block := Filter{ID: 0x100, Mask: 0x7F0 | EFFFlag | RTRFlag} // 100-10F
	one := Filter{ID: 0x105, Mask: 0x7FF | EFFFlag | RTRFlag}
	other := Filter{ID: 0x200, Mask: 0x7FF | EFFFlag | RTRFlag}
	if f, ok := Intersect(block, one); !ok || f != one {
		t.Errorf("100-10F and 105: %v %v, want 105", f, ok)
	}
	if _, ok := Intersect(block, other); ok || Overlap(block, other) {
		t.Errorf("100-10F and 200 overlap")
	}
	a, _ := ParseItem("100-10F")
	b, _ := ParseItem("10F-120")
	c, _ := ParseItem("110")
	ext, _ := ParseItem("00000105")
	if !a.Overlaps(b) || a.Overlaps(c) || a.Overlaps(ext) {
		t.Errorf("Overlaps: %v %v %v, want true false false", a.Overlaps(b), a.Overlaps(c), a.Overlaps(ext))
	}
}
