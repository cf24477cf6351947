package confjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
)

// MaxFileBytes bounds a configuration file: it is read whole.
const MaxFileBytes = 16 << 20

// ReadFile reads a configuration file of bounded size.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(raw) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, MaxFileBytes)
	}
	return raw, nil
}

// Decode refuses unknown fields, trailing data and type mismatches, naming
// the offending field under prefix. Owners decode their block with their
// own prefix ("tokens", "clients[1]"), so a nested object is kept as a
// json.RawMessage by the level above.
func Decode(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, data, prefix)
	}
	if dec.More() {
		return Errorf(prefix, "unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(prefix, "unexpected data after the JSON value")
	}
	return nil
}

var durationType = reflect.TypeFor[Duration]()

func decodeError(err error, data []byte, prefix string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col, text := position(data, syn.Offset)
		return Errorf(prefix, "invalid JSON at line %d, column %d: %v\n%s\n%s^", line, col, syn, text, strings.Repeat(" ", col-1))
	case errors.As(err, &typ) && typ.Type == durationType:
		// Duration.UnmarshalJSON reports through UnmarshalTypeError so that
		// encoding/json fills in the field it was decoding.
		return Errorf(Join(prefix, typ.Field), "%s", typ.Value)
	case errors.As(err, &typ) && typ.Type.Kind() == reflect.Struct:
		// Not the Go type's name: it says where the block's type lives,
		// which is no business of the file's author.
		return Errorf(Join(prefix, typ.Field), "expected an object, got %s", typ.Value)
	case errors.As(err, &typ):
		return Errorf(Join(prefix, typ.Field), "expected %s, got %s", typ.Type.String(), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(prefix, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(prefix, "unexpected end of JSON")
	}
	return Errorf(prefix, "%v", err)
}

// position turns a byte offset into a 1-based line and column (in bytes)
// and that line's text, tabs shown as spaces so the caret lines up. The
// offset encoding/json reports is just past the offending byte.
func position(data []byte, offset int64) (line, col int, text string) {
	off := min(max(int(offset)-1, 0), len(data))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	end := bytes.IndexByte(data[start:], '\n')
	if end < 0 {
		end = len(data) - start
	}
	line = bytes.Count(data[:start], []byte{'\n'}) + 1
	text = strings.ReplaceAll(strings.TrimRight(string(data[start:start+end]), "\r"), "\t", " ")
	return line, off - start + 1, text
}
