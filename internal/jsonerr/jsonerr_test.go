package jsonerr

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		// x is the 12th character of line 2.
		{"{\n  \"buses\": x\n}", "line 2, column 12: invalid character 'x'"},
		{`{"buses":["can0",]}`, "line 1, column 18: invalid character ']'"},
		{"{\"buses\": {}", "line 1, column 13: unexpected end of file"},
		{"{\n", "line 2, column 1: unexpected end of file"},
		{"{\"a\": x", "line 1, column 7: invalid character 'x'"},
		{`{"buses": 1}`, "buses: number where map[string]interface {} is expected"},
	} {
		var v struct {
			Buses map[string]any `json:"buses"`
		}
		err := Wrap([]byte(tc.doc), json.Unmarshal([]byte(tc.doc), &v))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q...", tc.doc, err, tc.want)
		}
	}
}
