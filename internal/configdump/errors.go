package configdump

import (
	"errors"
	"fmt"
)

// ParseError says where and why a dump could not be parsed.
type ParseError struct {
	// Path is the position in the dump's structure, e.g. configs[1].static_clusters[0].cluster.
	Path   string
	Line   int
	Column int
	Offset int
	Err    error
}

func (e *ParseError) Error() string {
	where := fmt.Sprintf("line %d, column %d (byte %d)", e.Line, e.Column, e.Offset)
	if e.Path != "" {
		where += " in " + e.Path
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ErrEmpty is returned for an input with nothing but white space.
var ErrEmpty = errors.New("the config dump is empty: expected a JSON object from Envoy's /config_dump")

func newParseError(data []byte, off int, path string, err error) *ParseError {
	line, col := lineCol(data, off)
	return &ParseError{Path: path, Line: line, Column: col, Offset: off, Err: err}
}
