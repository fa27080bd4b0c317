package configdump

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// scanner walks JSON structurally without building values. The parser uses it
// to find the resources inside a dump, so a section nobody asked for costs one
// quick validating pass instead of a full decode.
type scanner struct {
	data  []byte
	pos   int
	stack []byte // reused by skip
}

// syntaxError is a malformed-JSON complaint at a byte offset.
type syntaxError struct {
	Offset int
	Msg    string
}

func (e *syntaxError) Error() string { return e.Msg }

func (s *scanner) fail(format string, args ...any) error {
	return &syntaxError{Offset: s.pos, Msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) eof() error {
	return s.fail("unexpected end of input (the dump looks truncated)")
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// skipString moves past a string starting at pos and returns its raw bytes (quotes included).
func (s *scanner) skipString() ([]byte, error) {
	start := s.pos
	if s.pos >= len(s.data) {
		return nil, s.eof()
	}
	if s.data[s.pos] != '"' {
		return nil, s.fail("expected a string, found %q", s.data[s.pos])
	}
	s.pos++
	for {
		i := bytes.IndexByte(s.data[s.pos:], '"')
		if i < 0 {
			s.pos = len(s.data)
			return nil, s.eof()
		}
		// Control characters are not allowed inside JSON strings.
		for _, c := range s.data[s.pos : s.pos+i] {
			if c < 0x20 {
				return nil, s.fail("control character inside a string")
			}
		}
		end := s.pos + i
		// Count the backslashes right before the quote: an odd number escapes it.
		n := 0
		for j := end - 1; j > start && s.data[j] == '\\'; j-- {
			n++
		}
		s.pos = end + 1
		if n%2 == 0 {
			return s.data[start:s.pos], nil
		}
	}
}

// skipValue moves past one JSON value, checking its structure.
func (s *scanner) skipValue(depth int) error {
	if depth > 10000 {
		return s.fail("nesting deeper than 10000 levels")
	}
	switch c := s.peek(); c {
	case 0:
		return s.eof()
	case '"':
		_, err := s.skipString()
		return err
	case '{':
		return s.object(func(string, int) error { return s.skipValue(depth + 1) })
	case '[':
		return s.array(func(int) error { return s.skipValue(depth + 1) })
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return s.fail("unexpected character %q where a value was expected", c)
	}
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) {
		if bytes.HasPrefix([]byte(word), s.data[s.pos:]) {
			s.pos = len(s.data)
			return s.eof()
		}
		return s.fail("invalid literal, expected %s", word)
	}
	if string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail("invalid literal, expected %s", word)
	}
	s.pos += len(word)
	return nil
}

func (s *scanner) number() error {
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.pos++
			continue
		}
		break
	}
	if !json.Valid(s.data[start:s.pos]) {
		s.pos = start
		return s.fail("invalid number")
	}
	return nil
}

// object walks an object at pos, calling fn with each key and the offset of
// its value; fn must consume the value.
func (s *scanner) object(fn func(key string, valueAt int) error) error {
	if s.peek() != '{' {
		if s.pos >= len(s.data) {
			return s.eof()
		}
		return s.fail("expected an object, found %q", s.data[s.pos])
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() == 0 {
			return s.eof()
		}
		raw, err := s.skipString()
		if err != nil {
			return err
		}
		key := string(raw[1 : len(raw)-1])
		if bytes.IndexByte(raw, '\\') >= 0 {
			if err := json.Unmarshal(raw, &key); err != nil {
				return s.fail("invalid object key %s", raw)
			}
		}
		switch s.peek() {
		case ':':
			s.pos++
		case 0:
			return s.eof()
		default:
			return s.fail("expected ':' after object key %q", key)
		}
		if s.peek() == 0 {
			return s.eof()
		}
		if err := fn(key, s.pos); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		case 0:
			return s.eof()
		default:
			return s.fail("expected ',' or '}' after object member %q", key)
		}
	}
}

// array walks an array at pos, calling fn for each element at its start; fn must consume it.
func (s *scanner) array(fn func(i int) error) error {
	if s.peek() != '[' {
		if s.pos >= len(s.data) {
			return s.eof()
		}
		return s.fail("expected an array, found %q", s.data[s.pos])
	}
	s.pos++
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if s.peek() == 0 {
			return s.eof()
		}
		if err := fn(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		case 0:
			return s.eof()
		default:
			return s.fail("expected ',' or ']' after array element %d", i)
		}
	}
}

// value skips one value and returns its bytes.
func (s *scanner) value() ([]byte, error) {
	s.ws()
	start := s.pos
	if err := s.skip(); err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

// structural marks the bytes skip must look at.
var structural = func() (t [256]bool) {
	for _, c := range `"{}[]` {
		t[c] = true
	}
	return t
}()

// skip moves past one value. Objects and arrays get a fast structural pass
// (strings closed, brackets balanced and matched) rather than a full
// validation: whatever is later decoded is validated by protojson, and a
// section nobody asked for should cost as little as possible. A truncated
// dump is always caught here.
func (s *scanner) skip() error {
	c := s.peek()
	if c != '{' && c != '[' {
		return s.skipValue(0)
	}
	data := s.data
	stack := s.stack[:0]
	for i := s.pos; i < len(data); i++ {
		// Most bytes are neither quotes nor brackets; step over them with a table lookup.
		for i < len(data) && !structural[data[i]] {
			i++
		}
		if i >= len(data) {
			break
		}
		switch data[i] {
		case '"':
			j := i + 1
			for {
				k := bytes.IndexByte(data[j:], '"')
				if k < 0 {
					s.pos = len(data)
					return s.eof()
				}
				j += k
				n := 0
				for b := j - 1; b > i && data[b] == '\\'; b-- {
					n++
				}
				if n%2 == 0 {
					break
				}
				j++
			}
			i = j
		case '{', '[':
			if len(stack) >= 10000 {
				s.pos = i
				return s.fail("nesting deeper than 10000 levels")
			}
			stack = append(stack, data[i])
		case '}', ']':
			open := byte('{')
			if data[i] == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				s.pos = i
				return s.fail("unexpected %q: brackets do not match", data[i])
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				s.stack = stack
				s.pos = i + 1
				return nil
			}
		}
	}
	s.stack = stack
	s.pos = len(data)
	return s.eof()
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	if off > len(data) {
		off = len(data)
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}
