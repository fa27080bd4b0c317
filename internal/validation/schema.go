package validation

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// fieldIndex is what the decoder needs to know about one message type,
// computed once per type.
type fieldIndex struct {
	byName     map[string]protoreflect.FieldDescriptor
	required   []protoreflect.FieldDescriptor
	deprecated map[protoreflect.FieldNumber]bool
}

var indexes sync.Map // protoreflect.FullName -> *fieldIndex

func indexOf(md protoreflect.MessageDescriptor) *fieldIndex {
	if v, ok := indexes.Load(md.FullName()); ok {
		return v.(*fieldIndex)
	}
	fi := &fieldIndex{byName: map[string]protoreflect.FieldDescriptor{}, deprecated: map[protoreflect.FieldNumber]bool{}}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		fi.byName[string(fd.Name())] = fd
		fi.byName[fd.JSONName()] = fd
		opts, _ := fd.Options().(*descriptorpb.FieldOptions)
		if opts == nil {
			continue
		}
		if opts.GetDeprecated() {
			fi.deprecated[fd.Number()] = true
		}
		if fb, ok := proto.GetExtension(opts, annotations.E_FieldBehavior).([]annotations.FieldBehavior); ok {
			for _, b := range fb {
				if b == annotations.FieldBehavior_REQUIRED && !optionalInPractice(md, fd) {
					fi.required = append(fi.required, fd)
				}
			}
		}
	}
	indexes.Store(md.FullName(), fi)
	return fi
}

// optionalInPractice lists fields the API marks required that Istio itself
// accepts empty; flagging them would reject configuration that works.
func optionalInPractice(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) bool {
	switch md.Name() {
	case "Port", "SidecarPort":
		return fd.Name() == "name"
	}
	return false
}

// decoder fills a protobuf message from the generic value read from YAML or
// JSON, recording every mismatch with its field path.
type decoder struct {
	errs       []FieldError
	deprecated []FieldError
	// path is the field being decoded ("spec.http[0].route"). It is one
	// buffer extended and cut back as the walk descends and returns, and
	// becomes a string only for a finding: a string per field was a large
	// share of decoding a big input that has none.
	path []byte
}

// here returns the path of the field being decoded.
func (d *decoder) here() string { return string(d.path) }

// at makes p the path of the field being decoded.
func (d *decoder) at(p string) { d.path = append(d.path[:0], p...) }

func (d *decoder) leave(n int) { d.path = d.path[:n] }

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) message(m protoreflect.Message, v any) {
	if v == nil {
		return
	}
	md := m.Descriptor()
	if wellKnown(d, m, v) {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		d.fail(d.here(), "expected an object, got %s", describe(v))
		return
	}
	fi := indexOf(md)
	var oneofSeen map[protoreflect.FullName]string
	// Keys are visited in map order; Decode sorts the errors afterwards.
	for k, val := range obj {
		fd, ok := fi.byName[k]
		if !ok {
			d.fail(d.here()+"."+k, "unknown field %q in %s", k, md.Name())
			continue
		}
		if val == nil {
			continue
		}
		d.field(k, fd, m, val, fi, &oneofSeen)
	}
	for _, fd := range fi.required {
		if !m.Has(fd) {
			d.fail(d.here()+"."+fd.JSONName(), "required field %s is missing", fd.JSONName())
		}
	}
}

// field decodes the value of field k (described by fd) of m.
func (d *decoder) field(k string, fd protoreflect.FieldDescriptor, m protoreflect.Message, val any, fi *fieldIndex, oneofSeen *map[protoreflect.FullName]string) {
	parent := len(d.path)
	defer d.leave(parent)
	d.path = append(append(d.path, '.'), k...)
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		if *oneofSeen == nil {
			*oneofSeen = map[protoreflect.FullName]string{}
		}
		if other, seen := (*oneofSeen)[od.FullName()]; seen {
			a, b := other, k
			if a > b {
				a, b = b, a
			}
			d.fail(string(d.path[:parent])+"."+b, "only one of %s and %s may be set", a, b)
			return
		}
		(*oneofSeen)[od.FullName()] = k
	}
	if fi.deprecated[fd.Number()] {
		d.deprecated = append(d.deprecated, FieldError{Field: d.here(), Message: fmt.Sprintf("%s is deprecated", k)})
	}
	switch {
	case fd.IsMap():
		d.mapField(m, fd, val)
	case fd.IsList():
		d.listField(m, fd, val)
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		d.message(m.Mutable(fd).Message(), val)
	default:
		if pv, ok := d.scalar(fd, val); ok {
			m.Set(fd, pv)
		}
	}
}

func (d *decoder) listField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any) {
	arr, ok := v.([]any)
	if !ok {
		d.fail(d.here(), "expected a list, got %s", describe(v))
		return
	}
	l := m.Mutable(fd).List()
	parent := len(d.path)
	defer d.leave(parent)
	for i, e := range arr {
		d.path = strconv.AppendInt(append(d.path[:parent], '['), int64(i), 10)
		d.path = append(d.path, ']')
		if fd.Kind() == protoreflect.MessageKind {
			el := l.NewElement()
			d.message(el.Message(), e)
			l.Append(el)
			continue
		}
		if e == nil {
			d.fail(d.here(), "null is not allowed in a list")
			continue
		}
		if pv, ok := d.scalar(fd, e); ok {
			l.Append(pv)
		}
	}
}

func (d *decoder) mapField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any) {
	obj, ok := v.(map[string]any)
	if !ok {
		d.fail(d.here(), "expected an object (a map), got %s", describe(v))
		return
	}
	mp := m.Mutable(fd).Map()
	kd, vd := fd.MapKey(), fd.MapValue()
	parent := len(d.path)
	defer d.leave(parent)
	for k := range obj {
		d.path = strconv.AppendQuote(append(d.path[:parent], '['), k)
		d.path = append(d.path, ']')
		kv, ok := d.scalar(kd, k)
		if !ok {
			continue
		}
		e := obj[k]
		if vd.Kind() == protoreflect.MessageKind {
			val := mp.NewValue()
			d.message(val.Message(), e)
			mp.Set(kv.MapKey(), val)
			continue
		}
		if e == nil {
			continue
		}
		if pv, ok := d.scalar(vd, e); ok {
			mp.Set(kv.MapKey(), pv)
		}
	}
}

func (d *decoder) scalar(fd protoreflect.FieldDescriptor, v any) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s, ok := v.(string); ok {
			return protoreflect.ValueOfString(s), true
		}
		d.fail(d.here(), "expected a string, got %s", describe(v))
	case protoreflect.BoolKind:
		if b, ok := v.(bool); ok {
			return protoreflect.ValueOfBool(b), true
		}
		d.fail(d.here(), "expected true or false, got %s", describe(v))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if i, ok := d.integer(v, math.MinInt32, math.MaxInt32); ok {
			return protoreflect.ValueOfInt32(int32(i)), true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if i, ok := d.integer(v, math.MinInt64, math.MaxInt64); ok {
			return protoreflect.ValueOfInt64(i), true
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if i, ok := d.integer(v, 0, math.MaxUint32); ok {
			return protoreflect.ValueOfUint32(uint32(i)), true
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if i, ok := d.integer(v, 0, math.MaxInt64); ok {
			return protoreflect.ValueOfUint64(uint64(i)), true
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		switch n := v.(type) {
		case int64:
			return floatValue(fd, float64(n)), true
		case float64:
			return floatValue(fd, n), true
		case string:
			if f, err := strconv.ParseFloat(n, 64); err == nil {
				return floatValue(fd, f), true
			}
		}
		d.fail(d.here(), "expected a number, got %s", describe(v))
	case protoreflect.EnumKind:
		ed := fd.Enum()
		switch n := v.(type) {
		case string:
			if ev := ed.Values().ByName(protoreflect.Name(n)); ev != nil {
				if opts, _ := ev.Options().(*descriptorpb.EnumValueOptions); opts.GetDeprecated() {
					d.deprecated = append(d.deprecated, FieldError{Field: d.here(), Message: fmt.Sprintf("value %s is deprecated", n)})
				}
				return protoreflect.ValueOfEnum(ev.Number()), true
			}
		case int64:
			if ev := ed.Values().ByNumber(protoreflect.EnumNumber(n)); ev != nil {
				return protoreflect.ValueOfEnum(ev.Number()), true
			}
		}
		d.fail(d.here(), "invalid value %s: expected one of %s", describe(v), enumNames(ed))
	case protoreflect.BytesKind:
		if s, ok := v.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return protoreflect.ValueOfBytes(b), true
			}
		}
		d.fail(d.here(), "expected base64-encoded bytes, got %s", describe(v))
	}
	return protoreflect.Value{}, false
}

func floatValue(fd protoreflect.FieldDescriptor, f float64) protoreflect.Value {
	if fd.Kind() == protoreflect.FloatKind {
		return protoreflect.ValueOfFloat32(float32(f))
	}
	return protoreflect.ValueOfFloat64(f)
}

func (d *decoder) integer(v any, lo, hi int64) (int64, bool) {
	var i int64
	switch n := v.(type) {
	case int64:
		i = n
	case float64:
		if n != math.Trunc(n) || n < math.MinInt64 || n > math.MaxInt64 {
			d.fail(d.here(), "expected an integer, got %v", n)
			return 0, false
		}
		i = int64(n)
	case string:
		p, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			d.fail(d.here(), "expected an integer, got %s", describe(v))
			return 0, false
		}
		i = p
	default:
		d.fail(d.here(), "expected an integer, got %s", describe(v))
		return 0, false
	}
	if i < lo || i > hi {
		d.fail(d.here(), "%d is out of range [%d, %d]", i, lo, hi)
		return 0, false
	}
	return i, true
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(t)
	case bool:
		return strconv.FormatBool(t)
	case int64, float64:
		return fmt.Sprintf("the number %v", t)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// wellKnown decodes the protobuf well-known types the Istio API uses, in the
// forms users write them; it reports whether m was one of them.
func wellKnown(d *decoder, m protoreflect.Message, v any) bool {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Duration":
		s, ok := v.(string)
		if !ok {
			d.fail(d.here(), "expected a duration string such as \"5s\" or \"100ms\", got %s", describe(v))
			return true
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(d.here(), "invalid duration %q: expected a number with a unit, such as \"5s\", \"1m\" or \"100ms\"", s)
			return true
		}
		pb := durationpb.New(dur)
		m.Set(m.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(pb.Seconds))
		m.Set(m.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(pb.Nanos))
		return true
	case "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.Int32Value",
		"google.protobuf.Int64Value", "google.protobuf.UInt32Value", "google.protobuf.UInt64Value",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.BytesValue":
		fd := m.Descriptor().Fields().ByName("value")
		if pv, ok := d.scalar(fd, v); ok {
			m.Set(fd, pv)
		}
		return true
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		val, err := structpb.NewValue(v)
		if err != nil {
			d.fail(d.here(), "invalid value: %v", err)
			return true
		}
		var src proto.Message = val
		switch m.Descriptor().Name() {
		case "Struct":
			if val.GetStructValue() == nil {
				d.fail(d.here(), "expected an object, got %s", describe(v))
				return true
			}
			src = val.GetStructValue()
		case "ListValue":
			if val.GetListValue() == nil {
				d.fail(d.here(), "expected a list, got %s", describe(v))
				return true
			}
			src = val.GetListValue()
		}
		proto.Merge(m.Interface(), src)
		return true
	}
	return false
}
