package cangw

import (
	"reflect"
	"testing"
)

// FuzzUnmarshalRule checks that decoding never panics and that a decoded
// rule encodes to bytes that decode to the same rule. The seed corpus in
// testdata/fuzz/FuzzUnmarshalRule holds encoded real rules.
func FuzzUnmarshalRule(f *testing.F) {
	f.Add([]byte{29, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Rule
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		_ = r.Validate() // must not panic either
		enc, err := r.marshal()
		if err != nil {
			t.Fatalf("encode of decoded rule: %v", err)
		}
		var r2 Rule
		if err := r2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode of re-encoded rule: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("unstable:\n%+v\n%+v", r, r2)
		}
		if !r.Equal(r2) {
			t.Fatal("Equal false for identical rules")
		}
	})
}
