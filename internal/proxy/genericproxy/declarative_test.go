package genericproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// A private layout: magic "MX", kind at 2, little-endian 2-byte length of
// the whole frame at 4, a 4-byte big-endian id at 6, a 4-byte method name at
// 10, a 1-byte pair count at 14, then pairs with 1-byte lengths.
func mxConfig() map[string]any {
	return map[string]any{
		"name":        "mx",
		"header_size": 15,
		"magic":       "0x4D58",
		"length":      map[string]any{"offset": 4, "size": 2, "byte_order": "little", "covers": "frame"},
		"request_id":  map[string]any{"offset": 6, "size": 4},
		"kind":        map[string]any{"offset": 2, "size": 1, "request": 1, "response": 2, "error": 3},
		"fields":      []any{map[string]any{"name": "op", "offset": 10, "size": 4}},
		"key_values":  map[string]any{"count": map[string]any{"offset": 14, "size": 1}, "key_length_size": 1, "value_length_size": 1},
		"method":      "op",
		"service":     "svc",
	}
}

func mxFrame(kind byte, id uint32, op string, pairs ...string) []byte {
	b := []byte{'M', 'X', kind, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, (op + "\x00\x00\x00\x00")[:4]...)
	b = append(b, byte(len(pairs)/2))
	for _, p := range pairs {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	b = append(b, "payload"...)
	binary.LittleEndian.PutUint16(b[4:], uint16(len(b)))
	return b
}

func compileMX(t testing.TB, v map[string]any) (Codec, error) {
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return compileDeclarative(&structReader{fields: s.GetFields(), f: "codec"})
}

func TestDeclarativeDecode(t *testing.T) {
	c, err := compileMX(t, mxConfig())
	if err != nil {
		t.Fatal(err)
	}
	in := append(mxFrame(1, 7, "get", "svc", "store", "tenant", "blue"), mxFrame(3, 8, "put")...)
	r := bufio.NewReader(bytes.NewReader(in))
	f, err := c.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != Request || f.ID != 7 || f.Method != "get" || f.Service != "store" || f.Meta["tenant"] != "blue" {
		t.Fatalf("%+v", f)
	}
	b, err := c.WithID(f, 0xfffffffe)
	if err != nil || binary.BigEndian.Uint32(b[6:]) != 0xfffffffe || !bytes.Equal(b[10:], f.Raw[10:]) {
		t.Fatalf("WithID: %x %v", b, err)
	}
	if _, err := c.WithID(f, 1<<32); err == nil {
		t.Fatal("an id wider than the field was accepted")
	}
	if f, err := c.Decode(r); err != nil || f.Kind != ErrorResponse || f.Method != "put" {
		t.Fatalf("second frame: %+v %v", f, err)
	}
	bad := mxFrame(1, 1, "x")
	bad[0] = 'Z'
	if _, err := c.Decode(bufio.NewReader(bytes.NewReader(bad))); !IsDecodeError(err) || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("bad magic: %v", err)
	}
}

func TestDeclarativeConfigRefusals(t *testing.T) {
	for _, c := range []struct {
		mod  func(map[string]any)
		want string
	}{
		{func(m map[string]any) { m["checksum"] = map[string]any{"offset": 1} }, "field checksum is not supported"},
		{func(m map[string]any) { m["request_id"] = map[string]any{"offset": 14, "size": 4} }, "request_id (offset 14, size 4) does not fit in header_size 15"},
		{func(m map[string]any) { m["length"].(map[string]any)["covers"] = "body" }, `covers: "body"`},
		{func(m map[string]any) { m["length"].(map[string]any)["byte_order"] = "middle" }, `byte_order: "middle"`},
		{func(m map[string]any) { m["magic"] = "xyz" }, "not a hex byte string"},
		{func(m map[string]any) { delete(m, "length") }, "length: the frame's length field is required"},
		{func(m map[string]any) { delete(m, "key_values"); m["service"] = "svc" }, `service: "svc" is neither a field`},
		{func(m map[string]any) { m["kind"].(map[string]any)["ping"] = 5 }, "field ping is not supported"},
	} {
		m := mxConfig()
		c.mod(m)
		if _, err := compileMX(t, m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v; want it to say %q", err, c.want)
		}
	}
}

// FuzzDeclarativeDecode: whatever the bytes, no panic; a decoded frame
// rewrites to another id and decodes to the same request.
func FuzzDeclarativeDecode(f *testing.F) {
	f.Add(mxFrame(1, 7, "get", "svc", "store", "tenant", "blue"))
	f.Add(mxFrame(2, 1<<31, "long", "k", ""))
	f.Add(append(mxFrame(3, 0, ""), mxFrame(1, 2, "a")...))
	c, err := compileMX(f, mxConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := c.Decode(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		out, err := c.WithID(fr, 5)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Decode(bufio.NewReader(bytes.NewReader(out)))
		if err != nil || again.ID != 5 || again.Method != fr.Method || again.Service != fr.Service || again.Kind != fr.Kind || len(again.Meta) != len(fr.Meta) {
			t.Fatalf("rewritten: %+v %v, was %+v", again, err, fr)
		}
	})
}
