package genericproxy

import (
	"fmt"
	"math"
	"sort"
	"strings"

	udpatype "github.com/cncf/xds/go/udpa/type/v1"
	xdstype "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// The codecs' config types. Envoy defines no Thrift or declarative codec
// for generic_proxy, so their configs are mesh's own, sent as a TypedStruct
// (xds.type.v3.TypedStruct or udpa.type.v1.TypedStruct) with these type URLs.
const (
	ThriftCodecType      = "type.googleapis.com/mesh.generic_proxy.codecs.thrift.v1alpha1.ThriftCodecConfig"
	DeclarativeCodecType = "type.googleapis.com/mesh.generic_proxy.codecs.declarative.v1alpha1.DeclarativeCodecConfig"
	dubboCodecType       = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.codecs.dubbo.v3.DubboCodecConfig"

	xdsTypedStruct  = "type.googleapis.com/xds.type.v3.TypedStruct"
	udpaTypedStruct = "type.googleapis.com/udpa.type.v1.TypedStruct"
)

// CompileCodec builds the codec a codec_config names.
func CompileCodec(tc *corev3.TypedExtensionConfig, f string) (Codec, error) {
	if tc == nil {
		return nil, fmt.Errorf("%s: a codec is required", f)
	}
	f = fmt.Sprintf("%s (%s)", f, tc.GetName())
	a := tc.GetTypedConfig()
	typeURL, value := a.GetTypeUrl(), (*structpb.Struct)(nil)
	switch typeURL {
	case xdsTypedStruct:
		ts := &xdstype.TypedStruct{}
		if err := a.UnmarshalTo(ts); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		typeURL, value = ts.GetTypeUrl(), ts.GetValue()
	case udpaTypedStruct:
		ts := &udpatype.TypedStruct{}
		if err := a.UnmarshalTo(ts); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		typeURL, value = ts.GetTypeUrl(), ts.GetValue()
	}
	s := &structReader{fields: value.GetFields(), f: f}
	switch typeURL {
	case ThriftCodecType:
		protocol := s.str("protocol")
		transport := s.str("transport")
		maxFrame := s.num("max_frame_size", 0, math.MaxInt32)
		oneway := s.strList("oneway_methods")
		if err := s.done(); err != nil {
			return nil, err
		}
		c, err := NewThriftCodec(protocol, transport, maxFrame)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if len(oneway) > 0 {
			c.oneway = map[string]bool{}
			for _, m := range oneway {
				c.oneway[m] = true
			}
			c.key += "/oneway=" + strings.Join(oneway, ",")
		}
		return c, nil
	case DeclarativeCodecType:
		return compileDeclarative(s)
	case dubboCodecType:
		return nil, fmt.Errorf("%s: the Dubbo codec is not supported yet (supported: %s, %s)", f, ThriftCodecType, DeclarativeCodecType)
	}
	return nil, fmt.Errorf("%s: codec type %q is not supported (supported: %s, %s, sent as a TypedStruct)", f, typeURL, ThriftCodecType, DeclarativeCodecType)
}

// structReader reads a codec's Struct config, field by field; done reports
// the first wrong value, or the fields nobody read, by name.
type structReader struct {
	fields map[string]*structpb.Value
	f      string
	read   map[string]bool
	err    error
}

func (s *structReader) get(name string) *structpb.Value {
	if s.read == nil {
		s.read = map[string]bool{}
	}
	s.read[name] = true
	return s.fields[name]
}

func (s *structReader) fail(format string, a ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("%s: "+format, append([]any{s.f}, a...)...)
	}
}

func (s *structReader) str(name string) string {
	v := s.get(name)
	if v == nil {
		return ""
	}
	sv, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		s.fail("%s: want a string", name)
		return ""
	}
	return sv.StringValue
}

func (s *structReader) num(name string, lo, hi int) int {
	v := s.get(name)
	if v == nil {
		return 0
	}
	nv, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok || nv.NumberValue != math.Trunc(nv.NumberValue) || nv.NumberValue < float64(lo) || nv.NumberValue > float64(hi) {
		s.fail("%s: want a whole number in %d..%d", name, lo, hi)
		return 0
	}
	return int(nv.NumberValue)
}

// strList reads a list of strings.
func (s *structReader) strList(name string) []string {
	v := s.get(name)
	if v == nil {
		return nil
	}
	lv, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		s.fail("%s: want a list of strings", name)
		return nil
	}
	var out []string
	for i, e := range lv.ListValue.GetValues() {
		sv, ok := e.GetKind().(*structpb.Value_StringValue)
		if !ok {
			s.fail("%s[%d]: want a string", name, i)
			return nil
		}
		out = append(out, sv.StringValue)
	}
	return out
}

func (s *structReader) has(name string) bool { return s.fields[name] != nil }

// sub reads a nested object.
func (s *structReader) sub(name string) *structReader {
	v := s.get(name)
	if v == nil {
		return nil
	}
	sv, ok := v.GetKind().(*structpb.Value_StructValue)
	if !ok {
		s.fail("%s: want an object", name)
		return nil
	}
	return &structReader{fields: sv.StructValue.GetFields(), f: s.f + "." + name}
}

// list reads a list of objects.
func (s *structReader) list(name string) []*structReader {
	v := s.get(name)
	if v == nil {
		return nil
	}
	lv, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		s.fail("%s: want a list", name)
		return nil
	}
	var out []*structReader
	for i, e := range lv.ListValue.GetValues() {
		sv, ok := e.GetKind().(*structpb.Value_StructValue)
		if !ok {
			s.fail("%s[%d]: want an object", name, i)
			return nil
		}
		out = append(out, &structReader{fields: sv.StructValue.GetFields(), f: fmt.Sprintf("%s.%s[%d]", s.f, name, i)})
	}
	return out
}

func (s *structReader) done() error {
	if s.err != nil {
		return s.err
	}
	var unknown []string
	for k := range s.fields {
		if !s.read[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s: field %s is not supported by mesh-proxy (remove it, or it would be ignored)", s.f, strings.Join(unknown, ", "))
	}
	return nil
}
