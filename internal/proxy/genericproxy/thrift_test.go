package genericproxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
)

// thriftMessage encodes a call the way Apache Thrift's Go library does, in
// format "protocol/transport" (transport "header" wraps it in THeader with headers).
func thriftMessage(t testing.TB, format, name string, typ thrift.TMessageType, seq int32, headers map[string]string) []byte {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	cfg := &thrift.TConfiguration{}
	var prot thrift.TProtocol
	var flush thrift.TTransport = buf
	protocol, transport, _ := strings.Cut(format, "/")
	switch transport {
	case "framed":
		flush = thrift.NewTFramedTransportConf(buf, cfg)
	case "header":
		hc := *cfg
		id := thrift.THeaderProtocolBinary
		if protocol == "compact" {
			id = thrift.THeaderProtocolCompact
		}
		hc.THeaderProtocolID = thrift.THeaderProtocolIDPtrMust(id)
		hp := thrift.NewTHeaderProtocolConf(buf, &hc)
		for k, v := range headers {
			hp.SetWriteHeader(k, v)
		}
		prot = hp
	}
	if prot == nil {
		if protocol == "compact" {
			prot = thrift.NewTCompactProtocolConf(flush, cfg)
		} else {
			prot = thrift.NewTBinaryProtocolConf(flush, cfg)
		}
	}
	prot.WriteMessageBegin(ctx, name, typ, seq)
	// A struct with a string, a list of i32, a map and a nested struct, so
	// the codec has to walk every kind of value on an unframed stream.
	prot.WriteStructBegin(ctx, "args")
	prot.WriteFieldBegin(ctx, "s", thrift.STRING, 1)
	prot.WriteString(ctx, "hello")
	prot.WriteFieldEnd(ctx)
	prot.WriteFieldBegin(ctx, "l", thrift.LIST, 2)
	prot.WriteListBegin(ctx, thrift.I32, 20)
	for i := 0; i < 20; i++ {
		prot.WriteI32(ctx, int32(i*1000))
	}
	prot.WriteListEnd(ctx)
	prot.WriteFieldEnd(ctx)
	prot.WriteFieldBegin(ctx, "m", thrift.MAP, 20) // a long-form field id in compact
	prot.WriteMapBegin(ctx, thrift.STRING, thrift.DOUBLE, 2)
	prot.WriteString(ctx, "x")
	prot.WriteDouble(ctx, 1.5)
	prot.WriteString(ctx, "y")
	prot.WriteDouble(ctx, 2.5)
	prot.WriteMapEnd(ctx)
	prot.WriteFieldEnd(ctx)
	prot.WriteFieldBegin(ctx, "b", thrift.BOOL, 21)
	prot.WriteBool(ctx, true)
	prot.WriteFieldEnd(ctx)
	prot.WriteFieldBegin(ctx, "n", thrift.STRUCT, 22)
	prot.WriteStructBegin(ctx, "inner")
	prot.WriteFieldBegin(ctx, "i", thrift.I64, 1)
	prot.WriteI64(ctx, -7)
	prot.WriteFieldEnd(ctx)
	prot.WriteFieldStop(ctx)
	prot.WriteStructEnd(ctx)
	prot.WriteFieldEnd(ctx)
	prot.WriteFieldStop(ctx)
	prot.WriteStructEnd(ctx)
	prot.WriteMessageEnd(ctx)
	if err := prot.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var thriftFormats = []string{"binary/unframed", "binary/framed", "binary/header", "compact/unframed", "compact/framed", "compact/header"}

func TestThriftDecodeAndRewrite(t *testing.T) {
	c, err := NewThriftCodec("auto", "auto", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range thriftFormats {
		t.Run(format, func(t *testing.T) {
			msg := thriftMessage(t, format, "Calc:add", thrift.CALL, 41, map[string]string{"tenant": "blue"})
			// Two messages back to back, then a one-way one: the codec must
			// find each one's end.
			stream := append(append(append([]byte(nil), msg...), msg...), thriftMessage(t, format, "log", thrift.ONEWAY, 3, nil)...)
			r := bufio.NewReader(bytes.NewReader(stream))
			for i := 0; i < 2; i++ {
				f, err := c.Decode(r)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if f.Kind != Request || f.Service != "Calc" || f.Method != "add" || f.ID != 41 || !bytes.Equal(f.Raw, msg) {
					t.Fatalf("message %d: kind %s service %q method %q id %d (%d bytes of %d)", i, f.Kind, f.Service, f.Method, f.ID, len(f.Raw), len(msg))
				}
				if strings.HasSuffix(format, "/header") && f.Meta["tenant"] != "blue" {
					t.Fatalf("THeader headers: %v", f.Meta)
				}
			}
			f, err := c.Decode(r)
			if err != nil || f.Kind != OneWay || f.Method != "log" {
				t.Fatalf("one-way message: %+v %v", f, err)
			}
			if _, err := c.Decode(r); err != io.EOF {
				t.Fatalf("after the last message: %v, want io.EOF", err)
			}
			// A rewritten seqid is what the Thrift library reads back.
			f, _ = c.Decode(bufio.NewReader(bytes.NewReader(msg)))
			for _, id := range []uint64{0, 300, 1 << 30} {
				b, err := c.WithID(f, id)
				if err != nil {
					t.Fatal(err)
				}
				name, _, seq := readBack(t, format, b)
				if name != "Calc:add" || seq != int32(id) {
					t.Fatalf("after WithID(%d) the library reads %q seqid %d", id, name, seq)
				}
			}
			// The local reply is a TApplicationException the library reads.
			reply := c.Reply(f, ReplyNoRoute, "")
			name, typ, seq := readBack(t, format, reply)
			if name != "Calc:add" || typ != thrift.EXCEPTION || seq != 41 {
				t.Fatalf("local reply: %q type %d seqid %d", name, typ, seq)
			}
		})
	}
}

// readBack reads a message's header, and for an exception its message, with Apache Thrift's Go library.
func readBack(t *testing.T, format string, b []byte) (string, thrift.TMessageType, int32) {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	buf.Write(b)
	cfg := &thrift.TConfiguration{}
	protocol, transport, _ := strings.Cut(format, "/")
	var prot thrift.TProtocol
	var tr thrift.TTransport = buf
	switch transport {
	case "framed":
		tr = thrift.NewTFramedTransportConf(buf, cfg)
	case "header":
		prot = thrift.NewTHeaderProtocolConf(buf, cfg)
	}
	if prot == nil {
		if protocol == "compact" {
			prot = thrift.NewTCompactProtocolConf(tr, cfg)
		} else {
			prot = thrift.NewTBinaryProtocolConf(tr, cfg)
		}
	}
	name, typ, seq, err := prot.ReadMessageBegin(ctx)
	if err != nil {
		t.Fatalf("the Thrift library cannot read %x: %v", b, err)
	}
	if typ == thrift.EXCEPTION {
		ae := thrift.NewTApplicationException(0, "")
		if err := ae.Read(ctx, prot); err != nil {
			t.Fatalf("reading the exception: %v", err)
		}
		if !strings.Contains(ae.Error(), "no route") || ae.TypeId() != thrift.INTERNAL_ERROR {
			t.Fatalf("exception %d %q", ae.TypeId(), ae.Error())
		}
	}
	return name, typ, seq
}

func TestThriftCodecRefusesWhatItDoesNotRead(t *testing.T) {
	framedOnly, _ := NewThriftCodec("binary", "framed", 0)
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"unframed where only framed is read", thriftMessage(t, "binary/unframed", "m", thrift.CALL, 1, nil)},
		{"compact where only binary is read", thriftMessage(t, "compact/framed", "m", thrift.CALL, 1, nil)},
		{"a frame longer than allowed", []byte{0x7f, 0xff, 0xff, 0xff, 0x80, 0x01}},
		{"not Thrift", []byte("GET / HTTP/1.1\r\n\r\n")},
	} {
		if _, err := framedOnly.Decode(bufio.NewReader(bytes.NewReader(c.in))); !IsDecodeError(err) {
			t.Errorf("%s: %v, want a decode error", c.name, err)
		}
	}
	if _, err := NewThriftCodec("json", "framed", 0); err == nil || !strings.Contains(err.Error(), `"json"`) {
		t.Errorf("protocol json: %v", err)
	}
}

// FuzzThriftDecode: whatever the bytes, Decode returns a frame or an error
// (no panic, no unbounded allocation), and a frame it returns rewrites to
// another id and decodes again to the same call.
func FuzzThriftDecode(f *testing.F) {
	for _, format := range thriftFormats {
		f.Add(thriftMessage(f, format, "Svc:method", thrift.CALL, 7, map[string]string{"k": "v"}))
		f.Add(thriftMessage(f, format, "reply", thrift.REPLY, 1<<20, nil))
	}
	c, _ := NewThriftCodec("auto", "auto", 1<<16)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := c.Decode(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, fr.Raw) {
			t.Fatalf("Raw is not the stream's start")
		}
		out, err := c.WithID(fr, 99)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Decode(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("a rewritten frame does not decode: %v", err)
		}
		if again.ID != 99 || again.Method != fr.Method || again.Service != fr.Service || again.Kind != fr.Kind {
			t.Fatalf("rewritten: %+v, was %+v", again, fr)
		}
		c.Reply(fr, ReplyTimeout, "")
	})
}
