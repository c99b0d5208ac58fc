package kerneltest

import (
	"bytes"
	"testing"
)

// Frame encoding needs no kernel: tested on the host.
func TestFrameString(t *testing.T) {
	for _, c := range []struct {
		f    Frame
		want string
	}{
		{Frame{ID: 0x123, Data: []byte{0x11, 0x22}}, "123#1122"},
		{Frame{ID: 0x1, Data: []byte{}}, "001#"},
		{Frame{ID: 0x12345678, Extended: true}, "12345678#"},
		{Frame{ID: 0x7ff, RTR: true}, "7FF#R"},
		{Frame{ID: 0x7ff, RTR: true, Data: make([]byte, 3)}, "7FF#R3"},
		{Frame{ID: 0x12345678, Extended: true, FD: true, Data: []byte{0xab}}, "12345678##0AB"},
		{Frame{ID: 0x456, FD: true, BRS: true, ESI: true}, "456##3"},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%#v: %q, want %q", c.f, got, c.want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []Frame{
		{ID: 0x123, Data: []byte{1, 2, 3}},
		{ID: 0x1abcdef, Extended: true, Data: []byte{}},
		{ID: 0x100, RTR: true, Data: make([]byte, 4)},
		{ID: 0x100, FD: true, BRS: true, Data: bytes.Repeat([]byte{7}, 48)},
	} {
		buf, err := f.marshal()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		g, err := unmarshal(buf)
		if err != nil || !g.Equal(f) {
			t.Errorf("%s: round trip gave %s, %v", f, g, err)
		}
	}
	for _, f := range []Frame{
		{ID: 0x800},
		{ID: 0x20000000, Extended: true},
		{ID: 1, Data: make([]byte, 9)},
		{ID: 1, FD: true, Data: make([]byte, 9)},
		{ID: 1, FD: true, RTR: true},
	} {
		if _, err := f.marshal(); err == nil {
			t.Errorf("%#v: marshal accepted an invalid frame", f)
		}
	}
}

func TestNormalizeFD(t *testing.T) {
	for in, want := range map[string]string{
		"123##5AA": "123##1AA", "123##4": "123##0", "123##0": "123##0",
		"123#11": "123#11", "12345678##7": "12345678##3",
	} {
		if got := normalizeFD(in); got != want {
			t.Errorf("normalizeFD(%q) = %q, want %q", in, got, want)
		}
	}
}
