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
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) message(m protoreflect.Message, v any, path string) {
	if v == nil {
		return
	}
	md := m.Descriptor()
	if wellKnown(d, m, v, path) {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object, got %s", describe(v))
		return
	}
	fi := indexOf(md)
	var oneofSeen map[protoreflect.FullName]string
	// Keys are visited in map order; Decode sorts the errors afterwards.
	for k, val := range obj {
		fp := path + "." + k
		fd, ok := fi.byName[k]
		if !ok {
			d.fail(fp, "unknown field %q in %s", k, md.Name())
			continue
		}
		if val == nil {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if oneofSeen == nil {
				oneofSeen = map[protoreflect.FullName]string{}
			}
			if other, seen := oneofSeen[od.FullName()]; seen {
				a, b := other, k
				if a > b {
					a, b = b, a
				}
				d.fail(path+"."+b, "only one of %s and %s may be set", a, b)
				continue
			}
			oneofSeen[od.FullName()] = k
		}
		if fi.deprecated[fd.Number()] {
			d.deprecated = append(d.deprecated, FieldError{Field: fp, Message: fmt.Sprintf("%s is deprecated", k)})
		}
		switch {
		case fd.IsMap():
			d.mapField(m, fd, val, fp)
		case fd.IsList():
			d.listField(m, fd, val, fp)
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			d.message(m.Mutable(fd).Message(), val, fp)
		default:
			if pv, ok := d.scalar(fd, val, fp); ok {
				m.Set(fd, pv)
			}
		}
	}
	for _, fd := range fi.required {
		if !m.Has(fd) {
			d.fail(path+"."+fd.JSONName(), "required field %s is missing", fd.JSONName())
		}
	}
}

func (d *decoder) listField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any, path string) {
	arr, ok := v.([]any)
	if !ok {
		d.fail(path, "expected a list, got %s", describe(v))
		return
	}
	l := m.Mutable(fd).List()
	for i, e := range arr {
		ep := idx(path, i)
		if fd.Kind() == protoreflect.MessageKind {
			el := l.NewElement()
			d.message(el.Message(), e, ep)
			l.Append(el)
			continue
		}
		if e == nil {
			d.fail(ep, "null is not allowed in a list")
			continue
		}
		if pv, ok := d.scalar(fd, e, ep); ok {
			l.Append(pv)
		}
	}
}

func (d *decoder) mapField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v any, path string) {
	obj, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object (a map), got %s", describe(v))
		return
	}
	mp := m.Mutable(fd).Map()
	kd, vd := fd.MapKey(), fd.MapValue()
	for k := range obj {
		ep := key(path, k)
		kv, ok := d.scalar(kd, k, ep)
		if !ok {
			continue
		}
		e := obj[k]
		if vd.Kind() == protoreflect.MessageKind {
			val := mp.NewValue()
			d.message(val.Message(), e, ep)
			mp.Set(kv.MapKey(), val)
			continue
		}
		if e == nil {
			continue
		}
		if pv, ok := d.scalar(vd, e, ep); ok {
			mp.Set(kv.MapKey(), pv)
		}
	}
}

func (d *decoder) scalar(fd protoreflect.FieldDescriptor, v any, path string) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s, ok := v.(string); ok {
			return protoreflect.ValueOfString(s), true
		}
		d.fail(path, "expected a string, got %s", describe(v))
	case protoreflect.BoolKind:
		if b, ok := v.(bool); ok {
			return protoreflect.ValueOfBool(b), true
		}
		d.fail(path, "expected true or false, got %s", describe(v))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if i, ok := d.integer(v, path, math.MinInt32, math.MaxInt32); ok {
			return protoreflect.ValueOfInt32(int32(i)), true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if i, ok := d.integer(v, path, math.MinInt64, math.MaxInt64); ok {
			return protoreflect.ValueOfInt64(i), true
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if i, ok := d.integer(v, path, 0, math.MaxUint32); ok {
			return protoreflect.ValueOfUint32(uint32(i)), true
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if i, ok := d.integer(v, path, 0, math.MaxInt64); ok {
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
		d.fail(path, "expected a number, got %s", describe(v))
	case protoreflect.EnumKind:
		ed := fd.Enum()
		switch n := v.(type) {
		case string:
			if ev := ed.Values().ByName(protoreflect.Name(n)); ev != nil {
				if opts, _ := ev.Options().(*descriptorpb.EnumValueOptions); opts.GetDeprecated() {
					d.deprecated = append(d.deprecated, FieldError{Field: path, Message: fmt.Sprintf("value %s is deprecated", n)})
				}
				return protoreflect.ValueOfEnum(ev.Number()), true
			}
		case int64:
			if ev := ed.Values().ByNumber(protoreflect.EnumNumber(n)); ev != nil {
				return protoreflect.ValueOfEnum(ev.Number()), true
			}
		}
		d.fail(path, "invalid value %s: expected one of %s", describe(v), enumNames(ed))
	case protoreflect.BytesKind:
		if s, ok := v.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return protoreflect.ValueOfBytes(b), true
			}
		}
		d.fail(path, "expected base64-encoded bytes, got %s", describe(v))
	}
	return protoreflect.Value{}, false
}

func floatValue(fd protoreflect.FieldDescriptor, f float64) protoreflect.Value {
	if fd.Kind() == protoreflect.FloatKind {
		return protoreflect.ValueOfFloat32(float32(f))
	}
	return protoreflect.ValueOfFloat64(f)
}

func (d *decoder) integer(v any, path string, lo, hi int64) (int64, bool) {
	var i int64
	switch n := v.(type) {
	case int64:
		i = n
	case float64:
		if n != math.Trunc(n) || n < math.MinInt64 || n > math.MaxInt64 {
			d.fail(path, "expected an integer, got %v", n)
			return 0, false
		}
		i = int64(n)
	case string:
		p, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			d.fail(path, "expected an integer, got %s", describe(v))
			return 0, false
		}
		i = p
	default:
		d.fail(path, "expected an integer, got %s", describe(v))
		return 0, false
	}
	if i < lo || i > hi {
		d.fail(path, "%d is out of range [%d, %d]", i, lo, hi)
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
func wellKnown(d *decoder, m protoreflect.Message, v any, path string) bool {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Duration":
		s, ok := v.(string)
		if !ok {
			d.fail(path, "expected a duration string such as \"5s\" or \"100ms\", got %s", describe(v))
			return true
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, "invalid duration %q: expected a number with a unit, such as \"5s\", \"1m\" or \"100ms\"", s)
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
		if pv, ok := d.scalar(fd, v, path); ok {
			m.Set(fd, pv)
		}
		return true
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		val, err := structpb.NewValue(v)
		if err != nil {
			d.fail(path, "invalid value: %v", err)
			return true
		}
		var src proto.Message = val
		switch m.Descriptor().Name() {
		case "Struct":
			if val.GetStructValue() == nil {
				d.fail(path, "expected an object, got %s", describe(v))
				return true
			}
			src = val.GetStructValue()
		case "ListValue":
			if val.GetListValue() == nil {
				d.fail(path, "expected a list, got %s", describe(v))
				return true
			}
			src = val.GetListValue()
		}
		proto.Merge(m.Interface(), src)
		return true
	}
	return false
}
