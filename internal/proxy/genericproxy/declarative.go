package genericproxy

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strings"
)

// DeclarativeCodec reads a framed protocol described in configuration: a
// fixed header (magic, a length field and what it counts), a request id
// and a kind at fixed offsets, and the method, service and metadata in
// fixed-offset fields or a key-value section. See docs/protocols.md.
type DeclarativeCodec struct {
	name       string
	key        string
	headerSize int
	magic      []byte
	magicAt    int
	length     field
	covers     int // coversFrame, coversAfterLength, coversAfterHeader
	adjust     int
	maxFrame   int
	id         *field
	kind       *field
	kinds      map[uint64]Kind
	fixed      []namedField // string or number fields in the header
	kv         *kvSection
	methodKey  string // where the method comes from: a fixed field's or a key's name
	serviceKey string
}

const (
	coversFrame = iota
	coversAfterLength
	coversAfterHeader
)

// field is a fixed-offset unsigned integer or byte string.
type field struct {
	offset, size int
	little       bool
	str          bool
}

type namedField struct {
	name string
	field
}

// kvSection is a run of key-value pairs: count pairs (from a count field),
// each a length-prefixed key then a length-prefixed value.
type kvSection struct {
	offset         int // where the section starts; -1: right after the fixed header
	count          field
	keyLen, valLen int
	little         bool
}

func (f field) uint(b []byte) uint64 {
	v := b[f.offset : f.offset+f.size]
	var n uint64
	for i := range v {
		if f.little {
			n |= uint64(v[i]) << (8 * i)
		} else {
			n = n<<8 | uint64(v[i])
		}
	}
	return n
}

func (f field) put(b []byte, n uint64) {
	v := b[f.offset : f.offset+f.size]
	for i := range v {
		if f.little {
			v[i] = byte(n >> (8 * i))
		} else {
			v[len(v)-1-i] = byte(n >> (8 * i))
		}
	}
}

func (f field) max() uint64 {
	if f.size >= 8 {
		return math.MaxUint64
	}
	return 1<<(8*f.size) - 1
}

func compileDeclarative(s *structReader) (Codec, error) {
	c := &DeclarativeCodec{name: s.str("name"), maxFrame: s.num("max_frame_size", 0, math.MaxInt32), kinds: map[uint64]Kind{}}
	if c.maxFrame == 0 {
		c.maxFrame = defaultMaxFrame
	}
	c.headerSize = s.num("header_size", 0, 1<<16)
	if m := s.str("magic"); m != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(m, "0x"), "0X"))
		if err != nil || len(b) == 0 {
			s.fail("magic: %q is not a hex byte string (e.g. \"0xCAFE\")", m)
		}
		c.magic = b
	}
	c.magicAt = s.num("magic_offset", 0, 1<<16)
	if l := s.sub("length"); l != nil {
		c.length = readField(l, false)
		switch cov := l.str("covers"); cov {
		case "", "after_length":
			c.covers = coversAfterLength
		case "frame":
			c.covers = coversFrame
		case "after_header":
			c.covers = coversAfterHeader
		default:
			l.fail("covers: %q is not frame, after_length or after_header", cov)
		}
		c.adjust = l.num("adjust", -(1 << 16), 1<<16)
		if err := l.done(); err != nil {
			return nil, err
		}
	} else if s.err == nil {
		s.fail("length: the frame's length field is required (offset, size, byte_order, covers)")
	}
	if v := s.sub("request_id"); v != nil {
		f := readField(v, false)
		c.id = &f
		if err := v.done(); err != nil {
			return nil, err
		}
	}
	if v := s.sub("kind"); v != nil {
		f := readField(v, false)
		c.kind = &f
		for _, k := range []struct {
			name string
			kind Kind
		}{{"request", Request}, {"response", Response}, {"oneway", OneWay}, {"error", ErrorResponse}} {
			if v.has(k.name) {
				c.kinds[uint64(v.num(k.name, 0, math.MaxInt32))] = k.kind
			}
		}
		if err := v.done(); err != nil {
			return nil, err
		}
		if len(c.kinds) == 0 {
			return nil, fmt.Errorf("%s: give the values that mean request and response (and oneway, error)", v.f)
		}
	}
	for _, v := range s.list("fields") {
		nf := namedField{name: v.str("name"), field: readField(v, true)}
		if nf.name == "" {
			v.fail("name: a field needs a name")
		}
		if err := v.done(); err != nil {
			return nil, err
		}
		c.fixed = append(c.fixed, nf)
	}
	if v := s.sub("key_values"); v != nil {
		kv := &kvSection{offset: -1, keyLen: v.num("key_length_size", 1, 4), valLen: v.num("value_length_size", 1, 4)}
		if v.has("offset") {
			kv.offset = v.num("offset", 0, 1<<16)
		}
		if cnt := v.sub("count"); cnt != nil {
			kv.count = readField(cnt, false)
			if err := cnt.done(); err != nil {
				return nil, err
			}
		} else {
			v.fail("count: the field holding the number of pairs is required")
		}
		switch bo := v.str("byte_order"); bo {
		case "", "big":
		case "little":
			kv.little = true
		default:
			v.fail("byte_order: %q is not big or little", bo)
		}
		for _, n := range []int{kv.keyLen, kv.valLen} {
			if n == 3 {
				v.fail("key_length_size and value_length_size are 1, 2 or 4")
			}
		}
		if err := v.done(); err != nil {
			return nil, err
		}
		c.kv = kv
	}
	c.methodKey, c.serviceKey = s.str("method"), s.str("service")
	if err := s.done(); err != nil {
		return nil, err
	}
	// What the fields say must fit the fixed header.
	check := func(what string, f field) error {
		if f.size <= 0 || f.offset+f.size > c.headerSize {
			return fmt.Errorf("%s: %s (offset %d, size %d) does not fit in header_size %d", s.f, what, f.offset, f.size, c.headerSize)
		}
		if !f.str && f.size > 8 {
			return fmt.Errorf("%s: %s: a number is at most 8 bytes", s.f, what)
		}
		return nil
	}
	if c.name == "" {
		return nil, fmt.Errorf("%s: name: the protocol needs a name (it labels logs and stats)", s.f)
	}
	if c.headerSize == 0 {
		return nil, fmt.Errorf("%s: header_size: the fixed header's size is required", s.f)
	}
	if c.magic != nil && c.magicAt+len(c.magic) > c.headerSize {
		return nil, fmt.Errorf("%s: magic does not fit in header_size %d", s.f, c.headerSize)
	}
	if err := check("length", c.length); err != nil {
		return nil, err
	}
	if c.id != nil {
		if err := check("request_id", *c.id); err != nil {
			return nil, err
		}
	}
	if c.kind != nil {
		if err := check("kind", *c.kind); err != nil {
			return nil, err
		}
	}
	names := map[string]bool{}
	for _, f := range c.fixed {
		if err := check("fields."+f.name, f.field); err != nil {
			return nil, err
		}
		names[f.name] = true
	}
	if c.kv != nil {
		if err := check("key_values.count", c.kv.count); err != nil {
			return nil, err
		}
	}
	for _, k := range []struct{ what, name string }{{"method", c.methodKey}, {"service", c.serviceKey}} {
		if k.name != "" && !names[k.name] && c.kv == nil {
			return nil, fmt.Errorf("%s: %s: %q is neither a field nor (with no key_values section) a key", s.f, k.what, k.name)
		}
	}
	c.key = fmt.Sprintf("declarative/%s/%p", c.name, c)
	return c, nil
}

// readField reads offset, size and byte_order (and type, when strings are allowed).
func readField(s *structReader, strOK bool) field {
	f := field{offset: s.num("offset", 0, 1<<16), size: s.num("size", 1, 1<<16)}
	switch bo := s.str("byte_order"); bo {
	case "", "big":
	case "little":
		f.little = true
	default:
		s.fail("byte_order: %q is not big or little", bo)
	}
	if strOK {
		switch t := s.str("type"); t {
		case "", "string":
			f.str = true
		case "uint":
		default:
			s.fail("type: %q is not string or uint", t)
		}
	} else if f.size > 8 {
		s.fail("size: a number field is 1 to 8 bytes")
	}
	return f
}

func (c *DeclarativeCodec) Name() string { return c.name }
func (c *DeclarativeCodec) Key() string  { return c.key }

// MaxID is the largest request id the id field holds (0: no id field,
// then one request at a time goes on an upstream connection).
func (c *DeclarativeCodec) MaxID() uint64 {
	if c.id == nil {
		return 0
	}
	return min(c.id.max(), math.MaxInt64)
}

func (c *DeclarativeCodec) Decode(r *bufio.Reader) (*Frame, error) {
	h, err := r.Peek(c.headerSize)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if c.magic != nil && !bytes.Equal(h[c.magicAt:c.magicAt+len(c.magic)], c.magic) {
		return nil, decodeErr("%s: bad magic %x (want %x)", c.name, h[c.magicAt:c.magicAt+len(c.magic)], c.magic)
	}
	l := c.length.uint(h)
	if l > uint64(c.maxFrame)+1<<16 {
		return nil, decodeErr("%s: frame length %d is over %d", c.name, l, c.maxFrame)
	}
	total := int(l) + c.adjust
	switch c.covers {
	case coversAfterLength:
		total += c.length.offset + c.length.size
	case coversAfterHeader:
		total += c.headerSize
	}
	if total < c.headerSize || total > c.maxFrame {
		return nil, decodeErr("%s: a frame of %d bytes is outside %d..%d", c.name, total, c.headerSize, c.maxFrame)
	}
	buf := make([]byte, total)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	f := &Frame{Raw: buf}
	if c.id != nil {
		f.ID = c.id.uint(buf)
	}
	if c.kind != nil {
		k, ok := c.kinds[c.kind.uint(buf)]
		if !ok {
			return nil, decodeErr("%s: kind %d is none of the configured values", c.name, c.kind.uint(buf))
		}
		f.Kind = k
	}
	for _, nf := range c.fixed {
		if f.Meta == nil {
			f.Meta = map[string]string{}
		}
		if nf.str {
			f.Meta[nf.name] = string(bytes.TrimRight(buf[nf.offset:nf.offset+nf.size], "\x00 "))
		} else {
			f.Meta[nf.name] = fmt.Sprint(nf.uint(buf))
		}
	}
	if kv := c.kv; kv != nil {
		pos := kv.offset
		if pos < 0 {
			pos = c.headerSize
		}
		n := kv.count.uint(buf)
		for i := uint64(0); i < n; i++ {
			k, next, err := c.lenPrefixed(buf, pos, kv.keyLen, kv.little)
			if err != nil {
				return nil, err
			}
			v, next, err := c.lenPrefixed(buf, next, kv.valLen, kv.little)
			if err != nil {
				return nil, err
			}
			pos = next
			if f.Meta == nil {
				f.Meta = map[string]string{}
			}
			f.Meta[string(k)] = string(v)
		}
	}
	if c.methodKey != "" {
		f.Method = f.Meta[c.methodKey]
	}
	if c.serviceKey != "" {
		f.Service = f.Meta[c.serviceKey]
	}
	return f, nil
}

func (c *DeclarativeCodec) lenPrefixed(buf []byte, pos, size int, little bool) ([]byte, int, error) {
	if pos < 0 || pos+size > len(buf) {
		return nil, 0, decodeErr("%s: the key-value section runs past the frame", c.name)
	}
	n := field{offset: pos, size: size, little: little}.uint(buf)
	end := uint64(pos+size) + n
	if end > uint64(len(buf)) {
		return nil, 0, decodeErr("%s: a key or value of %d bytes runs past the frame", c.name, n)
	}
	return buf[pos+size : end], int(end), nil
}

func (c *DeclarativeCodec) WithID(f *Frame, id uint64) ([]byte, error) {
	if c.id == nil {
		return f.Raw, nil
	}
	if id > c.id.max() {
		return nil, fmt.Errorf("%s: request id %d does not fit the %d-byte id field", c.name, id, c.id.size)
	}
	out := append([]byte(nil), f.Raw...)
	c.id.put(out, id)
	return out, nil
}

// Reply: a described protocol has no error form the proxy could write;
// the downstream connection is closed instead.
func (c *DeclarativeCodec) Reply(*Frame, ReplyKind, string) []byte { return nil }
