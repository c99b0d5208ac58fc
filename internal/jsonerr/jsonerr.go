// Package jsonerr says where in a JSON document decoding failed, the same
// way for every file kanto-can reads (the policy, the CNI configuration):
// "line L, column C" of the offending byte, both 1-based.
package jsonerr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Position is the line and column (1-based) of the byte before offset:
// encoding/json's SyntaxError.Offset counts the bytes read, the bad one
// included.
func Position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n') - 1
	return line, col
}

// Wrap adds to err, an error of json.Unmarshal of data, where it happened:
// the position of a syntax error or of an early end, the field of a type
// error. Other errors are returned as they are.
func Wrap(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
		// Where the next byte would have been.
		line, col := Position(data, int64(len(data)))
		return fmt.Errorf("line %d, column %d: unexpected end of file", line, col+1)
	case errors.As(err, &se):
		line, col := Position(data, se.Offset)
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("%s: %s where %s is expected", field, te.Value, te.Type)
	}
	return err
}
