package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// readJSON reads a stream of JSON values: objects, or arrays of objects.
func readJSON(name string, data []byte) ([]*Raw, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []*Raw
	for {
		start := skipSpace(data, int(dec.InputOffset()))
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, jsonError(name, data, start, err)
		}
		switch t := normalizeJSON(v).(type) {
		case map[string]any:
			r := &Raw{Object: t, Source: Source{File: name, Line: lineAt(data, start)}}
			r.itemLines = itemLines(data, start, t)
			out = append(out, r)
		case []any:
			lines := elementLines(data, start)
			for i, e := range t {
				m, ok := e.(map[string]any)
				line := lineAt(data, start)
				if i < len(lines) {
					line = lines[i]
				}
				if !ok {
					return nil, &ParseError{File: name, Line: line, Err: fmt.Errorf("array element %d: expected a Kubernetes object", i)}
				}
				out = append(out, &Raw{Object: m, Source: Source{File: name, Line: line}})
			}
		default:
			return nil, &ParseError{File: name, Line: lineAt(data, start), Err: errors.New("expected a Kubernetes object (a JSON object with apiVersion and kind)")}
		}
	}
}

func jsonError(name string, data []byte, start int, err error) error {
	off := start
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = int(se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		off = len(data)
	}
	return &ParseError{File: name, Line: lineAt(data, off), Err: fmt.Errorf("invalid JSON: %v", err)}
}

func skipSpace(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n':
			off++
		default:
			return off
		}
	}
	return off
}

func lineAt(data []byte, off int) int {
	if off > len(data) {
		off = len(data)
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// elementLines finds the line of each element of the JSON array at start by
// re-tokenising it; only the top level of the array is tracked.
func elementLines(data []byte, start int) []int {
	dec := json.NewDecoder(bytes.NewReader(data[start:]))
	if _, err := dec.Token(); err != nil { // [
		return nil
	}
	var lines []int
	for dec.More() {
		off := skipSpace(data, start+int(dec.InputOffset()))
		if off < len(data) && data[off] == ',' {
			off = skipSpace(data, off+1)
		}
		lines = append(lines, lineAt(data, off))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return lines
		}
	}
	return lines
}

// itemLines finds the lines of a List's items by scanning its "items" array.
func itemLines(data []byte, start int, obj map[string]any) []int {
	if _, ok := obj["items"].([]any); !ok {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data[start:]))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if key, _ := tok.(string); key == "items" {
			off := skipSpace(data, start+int(dec.InputOffset()))
			if off < len(data) && data[off] == ':' {
				off = skipSpace(data, off+1)
			}
			return elementLines(data, off)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// normalizeJSON turns json.Number into int64 or float64, as the YAML reader does.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeJSON(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalizeJSON(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	}
	return v
}
