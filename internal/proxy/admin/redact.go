package admin

import (
	udpaannotations "github.com/cncf/xds/go/udpa/annotations"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
)

const redacted = "[redacted]"

func redactedSource() *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: redacted}}
}

// redactSensitive returns m, or a copy of it in which every field the API
// marks sensitive (udpa.annotations.sensitive: private keys, passwords,
// HMAC secrets) shows "[redacted]" in all its strings and bytes, at any
// depth and inside Any, as Envoy's /config_dump shows them. The bootstrap
// and static resources carry such fields too, not only SDS secrets.
func redactSensitive(m proto.Message) proto.Message {
	// Almost no resource holds a secret inline: look before copying.
	if !redactMessage(m.ProtoReflect(), false, false) {
		return m
	}
	c := proto.Clone(m)
	redactMessage(c.ProtoReflect(), false, true)
	return c
}

// redactMessage redacts m in place (only looks, unless apply), every string
// and bytes field of it when within is set (m is inside a sensitive field),
// and reports whether there was anything to redact.
func redactMessage(m protoreflect.Message, within, apply bool) bool {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return false // a type this binary does not know: shown as it came
		}
		if !redactMessage(inner.ProtoReflect(), within, apply) {
			return false
		}
		if !apply {
			return true
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
		if err != nil {
			return false
		}
		a.Value = b
		return true
	}
	type leaf struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var leaves []leaf
	changed := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		in := within || sensitive(fd)
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					changed = redactMessage(mv.Message(), in, apply) || changed
					return true
				})
			}
		case fd.IsList():
			l := v.List()
			if fd.Message() != nil {
				for i := 0; i < l.Len(); i++ {
					changed = redactMessage(l.Get(i).Message(), in, apply) || changed
				}
			} else if in && (fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind) {
				leaves = append(leaves, leaf{fd, v})
			}
		case fd.Message() != nil:
			changed = redactMessage(v.Message(), in, apply) || changed
		case in && (fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind):
			leaves = append(leaves, leaf{fd, v})
		}
		return true
	})
	if !apply {
		return changed || len(leaves) > 0
	}
	// Set after ranging: a message must not change while it is ranged over.
	for _, l := range leaves {
		switch {
		case l.fd.IsList():
			list := l.v.List()
			for i := 0; i < list.Len(); i++ {
				list.Set(i, redactedValue(l.fd))
			}
		default:
			m.Set(l.fd, redactedValue(l.fd))
		}
		changed = true
	}
	return changed
}

func redactedValue(fd protoreflect.FieldDescriptor) protoreflect.Value {
	if fd.Kind() == protoreflect.BytesKind {
		return protoreflect.ValueOfBytes([]byte(redacted))
	}
	return protoreflect.ValueOfString(redacted)
}

func sensitive(fd protoreflect.FieldDescriptor) bool {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return false
	}
	s, _ := proto.GetExtension(opts, udpaannotations.E_Sensitive).(bool)
	return s
}
