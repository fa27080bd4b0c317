package genericproxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Thrift's protocols and transports, as the codec's config names them.
const (
	thriftBinary  = 0
	thriftCompact = 1

	transportUnframed = 0
	transportFramed   = 1
	transportHeader   = 2
)

// Thrift message types.
const (
	thriftCall      = 1
	thriftReply     = 2
	thriftException = 3
	thriftOneway    = 4
)

// ThriftCodec is Apache Thrift's binary and compact protocols over the
// unframed, framed and header (THeader) transports. Which of them a frame
// uses is read from its first bytes, among those the config allows.
type ThriftCodec struct {
	protocols  [2]bool // allowed: by thriftBinary/thriftCompact
	transports [3]bool // allowed: by transport*
	maxFrame   int
	key        string
	// oneway are methods whose calls get no reply though they come as
	// CALL, as Apache Thrift's Go library sends one-way calls.
	oneway map[string]bool
}

// NewThriftCodec allows protocol ("binary", "compact" or "auto": either) and
// transport ("framed", "unframed", "header" or "auto": any); maxFrame 0 is 16 MiB.
func NewThriftCodec(protocol, transport string, maxFrame int) (*ThriftCodec, error) {
	c := &ThriftCodec{maxFrame: maxFrame}
	if c.maxFrame <= 0 {
		c.maxFrame = defaultMaxFrame
	}
	switch protocol {
	case "", "auto":
		c.protocols = [2]bool{true, true}
		protocol = "auto"
	case "binary":
		c.protocols[thriftBinary] = true
	case "compact":
		c.protocols[thriftCompact] = true
	default:
		return nil, fmt.Errorf("protocol: %q is not a Thrift protocol mesh-proxy reads (binary, compact or auto)", protocol)
	}
	switch transport {
	case "", "auto":
		c.transports = [3]bool{true, true, true}
		transport = "auto"
	case "unframed":
		c.transports[transportUnframed] = true
	case "framed":
		c.transports[transportFramed] = true
	case "header":
		c.transports[transportHeader] = true
	default:
		return nil, fmt.Errorf("transport: %q is not a Thrift transport mesh-proxy reads (framed, unframed, header or auto)", transport)
	}
	c.key = fmt.Sprintf("thrift/%s/%s/%d", protocol, transport, c.maxFrame)
	return c, nil
}

func (c *ThriftCodec) Name() string { return "thrift" }
func (c *ThriftCodec) Key() string  { return c.key }

// Decode reads one Thrift message with its transport framing.
func (c *ThriftCodec) Decode(r *bufio.Reader) (*Frame, error) {
	b0, err := r.Peek(1)
	if err != nil {
		return nil, err
	}
	if b0[0] == 0x80 || b0[0] == 0x82 {
		proto := thriftBinary
		if b0[0] == 0x82 {
			proto = thriftCompact
		}
		if !c.transports[transportUnframed] {
			return nil, decodeErr("an unframed Thrift message where the codec reads only framed or header transports")
		}
		if !c.protocols[proto] {
			return nil, decodeErr("Thrift %s protocol where the codec reads only the other", protoName(proto))
		}
		mr := &msgReader{br: r, limit: c.maxFrame}
		f := &Frame{}
		if err := parseMessage(mr, proto, f); err != nil {
			return nil, err
		}
		f.Raw = mr.buf
		f.format = uint8(proto) | transportUnframed<<1
		c.markOneway(f)
		return f, nil
	}
	hdr, err := r.Peek(6)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr)))
	if n <= 0 || n > c.maxFrame {
		return nil, decodeErr("Thrift frame length %d is outside 1..%d", n, c.maxFrame)
	}
	transport := transportFramed
	if hdr[4] == 0x0f && hdr[5] == 0xff {
		transport = transportHeader
	}
	if !c.transports[transport] {
		return nil, decodeErr("a Thrift %s frame where the codec does not read that transport", transportName(transport))
	}
	buf := make([]byte, 4+n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	f := &Frame{Raw: buf}
	payload := 4
	proto := thriftBinary
	if transport == transportHeader {
		if payload, proto, err = parseTHeader(buf, f); err != nil {
			return nil, err
		}
	} else {
		switch buf[4] {
		case 0x80:
		case 0x82:
			proto = thriftCompact
		default:
			return nil, decodeErr("a Thrift frame whose message starts with byte 0x%02x (neither binary nor compact)", buf[4])
		}
	}
	if !c.protocols[proto] {
		return nil, decodeErr("Thrift %s protocol where the codec reads only the other", protoName(proto))
	}
	mr := &msgReader{b: buf, pos: payload, limit: len(buf)}
	if err := parseMessage(mr, proto, f); err != nil {
		return nil, err
	}
	if mr.pos != len(buf) {
		return nil, decodeErr("a Thrift frame of %d bytes holds a message of %d", n, mr.pos-4)
	}
	f.format = uint8(proto) | uint8(transport)<<1
	c.markOneway(f)
	return f, nil
}

func (c *ThriftCodec) markOneway(f *Frame) {
	if f.Kind == Request && c.oneway[f.Method] {
		f.Kind = OneWay
	}
}

// parseTHeader reads a THeader frame's header (buf holds the whole frame,
// length included): its seqid, protocol and key-value headers. It returns
// where the payload starts.
func parseTHeader(buf []byte, f *Frame) (payload, proto int, err error) {
	if len(buf) < 14 {
		return 0, 0, decodeErr("a THeader frame of %d bytes is shorter than its fixed header", len(buf)-4)
	}
	hlen := int(binary.BigEndian.Uint16(buf[12:14])) * 4
	payload = 14 + hlen
	if payload > len(buf) {
		return 0, 0, decodeErr("THeader header length %d runs past the frame", hlen)
	}
	mr := &msgReader{b: buf[:payload], pos: 14, limit: payload}
	pid, err := mr.uvarint(32)
	if err != nil {
		return 0, 0, err
	}
	switch pid {
	case 0:
		proto = thriftBinary
	case 2:
		proto = thriftCompact
	default:
		return 0, 0, decodeErr("THeader protocol id %d is not supported (0 binary, 2 compact)", pid)
	}
	nt, err := mr.uvarint(32)
	if err != nil {
		return 0, 0, err
	}
	if nt > 0 {
		// Transforms (zlib and the like) change the payload bytes: the
		// proxy could not read the method out of them.
		return 0, 0, decodeErr("THeader transforms are not supported (the frame has %d)", nt)
	}
	for mr.pos < payload {
		typ, err := mr.uvarint(32)
		if err != nil {
			return 0, 0, err
		}
		if typ == 0 { // padding
			break
		}
		if typ != 1 {
			return 0, 0, decodeErr("THeader info type %d is not supported (1: key-value)", typ)
		}
		cnt, err := mr.uvarint(32)
		if err != nil {
			return 0, 0, err
		}
		for i := uint64(0); i < cnt; i++ {
			k, err := mr.varString()
			if err != nil {
				return 0, 0, err
			}
			v, err := mr.varString()
			if err != nil {
				return 0, 0, err
			}
			if f.Meta == nil {
				f.Meta = map[string]string{}
			}
			f.Meta[string(k)] = string(v)
		}
	}
	return payload, proto, nil
}

// parseMessage reads a message's header into f and skips its body.
func parseMessage(mr *msgReader, proto int, f *Frame) error {
	var name []byte
	var typ byte
	var seq uint64
	var err error
	if proto == thriftBinary {
		v, err := mr.read(4)
		if err != nil {
			return err
		}
		if v[0] != 0x80 || v[1] != 0x01 {
			return decodeErr("Thrift binary message version 0x%02x%02x is not strict version 1", v[0], v[1])
		}
		typ = v[3] & 0x07
		if name, err = mr.i32String(); err != nil {
			return err
		}
		f.idAt, f.idLen = mr.pos, 4
		s, err := mr.read(4)
		if err != nil {
			return err
		}
		seq = uint64(binary.BigEndian.Uint32(s))
	} else {
		v, err := mr.read(2)
		if err != nil {
			return err
		}
		if v[1]&0x1f != 1 {
			return decodeErr("Thrift compact message version %d is not 1", v[1]&0x1f)
		}
		typ = v[1] >> 5
		f.idAt = mr.pos
		if seq, err = mr.uvarint(32); err != nil {
			return err
		}
		f.idLen = mr.pos - f.idAt
		if name, err = mr.varString(); err != nil {
			return err
		}
	}
	switch typ {
	case thriftCall:
		f.Kind = Request
	case thriftOneway:
		f.Kind = OneWay
	case thriftReply:
		f.Kind = Response
	case thriftException:
		f.Kind = ErrorResponse
	default:
		return decodeErr("Thrift message type %d is not call, reply, exception or oneway", typ)
	}
	f.ID = seq
	f.Method = string(name)
	// TMultiplexedProtocol names a call "Service:method".
	if i := strings.IndexByte(f.Method, ':'); i >= 0 {
		f.Service, f.Method = f.Method[:i], f.Method[i+1:]
	}
	if proto == thriftBinary {
		err = skipBinary(mr, 12, 0)
	} else {
		err = skipCompact(mr, 12, 0)
	}
	return err
}

const maxDepth = 64

func skipBinary(mr *msgReader, typ byte, depth int) error {
	if depth > maxDepth {
		return decodeErr("Thrift value nested deeper than %d", maxDepth)
	}
	var err error
	switch typ {
	case 2, 3: // bool, byte
		_, err = mr.read(1)
	case 6: // i16
		_, err = mr.read(2)
	case 8: // i32
		_, err = mr.read(4)
	case 4, 10: // double, i64
		_, err = mr.read(8)
	case 16: // uuid
		_, err = mr.read(16)
	case 11: // string, binary
		_, err = mr.i32String()
	case 12: // struct
		for {
			t, err := mr.read(1)
			if err != nil {
				return err
			}
			if t[0] == 0 {
				return nil
			}
			ft := t[0]
			if _, err := mr.read(2); err != nil {
				return err
			}
			if err := skipBinary(mr, ft, depth+1); err != nil {
				return err
			}
		}
	case 13: // map
		h, err := mr.read(6)
		if err != nil {
			return err
		}
		kt, vt, n := h[0], h[1], int32(binary.BigEndian.Uint32(h[2:]))
		if n < 0 {
			return decodeErr("Thrift map size %d", n)
		}
		for i := int32(0); i < n; i++ {
			if err := skipBinary(mr, kt, depth+1); err != nil {
				return err
			}
			if err := skipBinary(mr, vt, depth+1); err != nil {
				return err
			}
		}
	case 14, 15: // set, list
		h, err := mr.read(5)
		if err != nil {
			return err
		}
		et, n := h[0], int32(binary.BigEndian.Uint32(h[1:]))
		if n < 0 {
			return decodeErr("Thrift list size %d", n)
		}
		for i := int32(0); i < n; i++ {
			if err := skipBinary(mr, et, depth+1); err != nil {
				return err
			}
		}
	default:
		return decodeErr("Thrift binary type %d is not a value type", typ)
	}
	return err
}

func skipCompact(mr *msgReader, typ byte, depth int) error {
	if depth > maxDepth {
		return decodeErr("Thrift value nested deeper than %d", maxDepth)
	}
	var err error
	switch typ {
	case 1, 2, 3: // bool (in a collection: one byte), byte
		_, err = mr.read(1)
	case 4, 5, 6: // i16, i32, i64 as varints
		_, err = mr.uvarint(64)
	case 7: // double
		_, err = mr.read(8)
	case 13: // uuid
		_, err = mr.read(16)
	case 8: // binary
		_, err = mr.varString()
	case 12: // struct
		for {
			h, err := mr.read(1)
			if err != nil {
				return err
			}
			if h[0] == 0 {
				return nil
			}
			ft := h[0] & 0x0f
			if h[0]>>4 == 0 { // long form: the field id follows
				if _, err := mr.uvarint(16); err != nil {
					return err
				}
			}
			if ft == 1 || ft == 2 { // a bool field's value is in its type
				continue
			}
			if err := skipCompact(mr, ft, depth+1); err != nil {
				return err
			}
		}
	case 9, 10: // list, set
		h, err := mr.read(1)
		if err != nil {
			return err
		}
		n, et := uint64(h[0]>>4), h[0]&0x0f
		if n == 15 {
			if n, err = mr.uvarint(32); err != nil {
				return err
			}
		}
		for i := uint64(0); i < n; i++ {
			if err := skipCompact(mr, et, depth+1); err != nil {
				return err
			}
		}
	case 11: // map
		n, err := mr.uvarint(32)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		kv, err := mr.read(1)
		if err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			if err := skipCompact(mr, kv[0]>>4, depth+1); err != nil {
				return err
			}
			if err := skipCompact(mr, kv[0]&0x0f, depth+1); err != nil {
				return err
			}
		}
	default:
		return decodeErr("Thrift compact type %d is not a value type", typ)
	}
	return err
}

// WithID rewrites the message's seqid (and a THeader's).
func (c *ThriftCodec) WithID(f *Frame, id uint64) ([]byte, error) {
	if id > 0xffffffff {
		return nil, fmt.Errorf("thrift: request id %d does not fit a seqid", id)
	}
	proto, transport := int(f.format&1), int(f.format>>1)
	var out []byte
	if proto == thriftBinary {
		out = append([]byte(nil), f.Raw...)
		binary.BigEndian.PutUint32(out[f.idAt:], uint32(id))
	} else {
		v := binary.AppendUvarint(nil, id)
		out = make([]byte, 0, len(f.Raw)-f.idLen+len(v))
		out = append(out, f.Raw[:f.idAt]...)
		out = append(out, v...)
		out = append(out, f.Raw[f.idAt+f.idLen:]...)
		if transport != transportUnframed {
			binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		}
	}
	if transport == transportHeader {
		binary.BigEndian.PutUint32(out[8:], uint32(id))
	}
	return out, nil
}

// tAppInternalError is TApplicationException's INTERNAL_ERROR type.
const tAppInternalError = 6

// Reply is a TApplicationException in the request's protocol and transport.
func (c *ThriftCodec) Reply(req *Frame, kind ReplyKind, msg string) []byte {
	if req.Kind == OneWay {
		return nil
	}
	name := req.Method
	if req.Service != "" {
		name = req.Service + ":" + name
	}
	text := "mesh-proxy: " + kind.String()
	if msg != "" {
		text += ": " + msg
	}
	proto, transport := int(req.format&1), int(req.format>>1)
	var m []byte
	if proto == thriftBinary {
		m = binary.BigEndian.AppendUint32(m, 0x80010000|thriftException)
		m = binary.BigEndian.AppendUint32(m, uint32(len(name)))
		m = append(m, name...)
		m = binary.BigEndian.AppendUint32(m, uint32(req.ID))
		m = append(m, 11, 0, 1) // field 1: string message
		m = binary.BigEndian.AppendUint32(m, uint32(len(text)))
		m = append(m, text...)
		m = append(m, 8, 0, 2) // field 2: i32 type
		m = binary.BigEndian.AppendUint32(m, tAppInternalError)
		m = append(m, 0)
	} else {
		m = append(m, 0x82, thriftException<<5|1)
		m = binary.AppendUvarint(m, req.ID)
		m = binary.AppendUvarint(m, uint64(len(name)))
		m = append(m, name...)
		m = append(m, 1<<4|8) // field 1 (delta 1): binary
		m = binary.AppendUvarint(m, uint64(len(text)))
		m = append(m, text...)
		m = append(m, 1<<4|5)                             // field 2 (delta 1): i32
		m = binary.AppendUvarint(m, tAppInternalError<<1) // zigzag
		m = append(m, 0)
	}
	switch transport {
	case transportFramed:
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(m))), m...)
	case transportHeader:
		pid := byte(0)
		if proto == thriftCompact {
			pid = 2
		}
		hdr := []byte{pid, 0, 0, 0} // protocol id, no transforms, padding to 4 bytes
		out := binary.BigEndian.AppendUint32(nil, uint32(10+len(hdr)+len(m)))
		out = append(out, 0x0f, 0xff, 0, 0)
		out = binary.BigEndian.AppendUint32(out, uint32(req.ID))
		out = binary.BigEndian.AppendUint16(out, uint16(len(hdr)/4))
		out = append(out, hdr...)
		return append(out, m...)
	}
	return m
}

func protoName(p int) string {
	if p == thriftCompact {
		return "compact"
	}
	return "binary"
}

func transportName(t int) string {
	switch t {
	case transportFramed:
		return "framed"
	case transportHeader:
		return "header"
	}
	return "unframed"
}

// msgReader reads a message either out of a byte slice (a framed message,
// b set) or off a stream, keeping every byte it read (buf) so the message
// can be passed on whole. limit bounds the bytes it will read.
type msgReader struct {
	br    *bufio.Reader
	buf   []byte
	b     []byte
	pos   int
	limit int
}

func (m *msgReader) read(n int) ([]byte, error) {
	if n < 0 || m.pos+n > m.limit {
		if m.b != nil {
			return nil, decodeErr("a value runs past the end of its frame")
		}
		return nil, decodeErr("a message is longer than the %d bytes allowed", m.limit)
	}
	if m.b != nil {
		v := m.b[m.pos : m.pos+n]
		m.pos += n
		return v, nil
	}
	start := len(m.buf)
	if cap(m.buf)-start < n {
		nb := make([]byte, start, max(2*cap(m.buf), start+n, 256))
		copy(nb, m.buf)
		m.buf = nb
	}
	m.buf = m.buf[:start+n]
	if _, err := io.ReadFull(m.br, m.buf[start:]); err != nil {
		if err == io.EOF && start > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	m.pos += n
	return m.buf[start:], nil
}

func (m *msgReader) uvarint(bits int) (uint64, error) {
	var v uint64
	for shift := 0; ; shift += 7 {
		if shift >= bits+7 {
			return 0, decodeErr("a varint longer than %d bits", bits)
		}
		b, err := m.read(1)
		if err != nil {
			return 0, err
		}
		v |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			return v, nil
		}
	}
}

func (m *msgReader) varString() ([]byte, error) {
	n, err := m.uvarint(32)
	if err != nil {
		return nil, err
	}
	if n > uint64(m.limit-m.pos) {
		return nil, decodeErr("a string of %d bytes runs past the message", n)
	}
	return m.read(int(n))
}

func (m *msgReader) i32String() ([]byte, error) {
	h, err := m.read(4)
	if err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(h))
	if n < 0 || int64(n) > int64(m.limit-m.pos) {
		return nil, decodeErr("a string of %d bytes runs past the message", n)
	}
	return m.read(int(n))
}
