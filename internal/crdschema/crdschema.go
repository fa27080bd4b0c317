// Package crdschema derives the structural OpenAPI schemas of the CRDs the
// base chart ships: the Istio config API from istio.io/api's protobuf
// descriptors, and MeshOperator from its Go type.
package crdschema

import (
	"reflect"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Schema is one OpenAPI v3 schema node, in the shape Kubernetes reads.
type Schema = map[string]any

// fromMessage returns the schema of a protobuf message as protojson writes it.
func fromMessage(md protoreflect.MessageDescriptor, visiting map[protoreflect.FullName]bool) Schema {
	if s := wellKnown(md.FullName()); s != nil {
		return s
	}
	if visiting[md.FullName()] {
		// A recursive message cannot be spelled out structurally; accept anything below it.
		return Schema{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	}
	visiting[md.FullName()] = true
	defer delete(visiting, md.FullName())
	props := Schema{}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		props[fd.JSONName()] = fromField(fd, visiting)
	}
	s := Schema{"type": "object"}
	if len(props) > 0 {
		s["properties"] = props
	}
	return s
}

func fromField(fd protoreflect.FieldDescriptor, visiting map[protoreflect.FullName]bool) Schema {
	if fd.IsMap() {
		return Schema{"type": "object", "additionalProperties": fromSingular(fd.MapValue(), visiting)}
	}
	s := fromSingular(fd, visiting)
	if fd.IsList() {
		return Schema{"type": "array", "items": s}
	}
	return s
}

func fromSingular(fd protoreflect.FieldDescriptor, visiting map[protoreflect.FullName]bool) Schema {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return Schema{"type": "boolean"}
	case protoreflect.StringKind:
		return Schema{"type": "string"}
	case protoreflect.BytesKind:
		return Schema{"type": "string", "format": "byte"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return Schema{"type": "integer", "format": "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return Schema{"type": "integer", "minimum": 0, "maximum": 4294967295}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		// protojson writes 64-bit integers as strings but reads numbers too.
		return Schema{"x-kubernetes-int-or-string": true}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return Schema{"type": "number", "format": "double"}
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		names := make([]any, 0, vals.Len())
		for i := 0; i < vals.Len(); i++ {
			names = append(names, string(vals.Get(i).Name()))
		}
		return Schema{"type": "string", "enum": names}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return fromMessage(fd.Message(), visiting)
	}
	return Schema{"x-kubernetes-preserve-unknown-fields": true}
}

// wellKnown maps protobuf's well-known types to how protojson spells them.
func wellKnown(name protoreflect.FullName) Schema {
	switch name {
	case "google.protobuf.Duration":
		return Schema{"type": "string", "description": "A duration such as 1.5s or 300ms."}
	case "google.protobuf.Timestamp":
		return Schema{"type": "string", "format": "date-time"}
	case "google.protobuf.Struct", "google.protobuf.Any":
		return Schema{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	case "google.protobuf.Value":
		return Schema{"x-kubernetes-preserve-unknown-fields": true}
	case "google.protobuf.ListValue":
		return Schema{"type": "array", "items": Schema{"x-kubernetes-preserve-unknown-fields": true}}
	case "google.protobuf.BoolValue":
		return Schema{"type": "boolean", "nullable": true}
	case "google.protobuf.StringValue":
		return Schema{"type": "string", "nullable": true}
	case "google.protobuf.BytesValue":
		return Schema{"type": "string", "format": "byte", "nullable": true}
	case "google.protobuf.Int32Value":
		return Schema{"type": "integer", "format": "int32", "nullable": true}
	case "google.protobuf.UInt32Value":
		return Schema{"type": "integer", "minimum": 0, "maximum": 4294967295, "nullable": true}
	case "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		return Schema{"x-kubernetes-int-or-string": true, "nullable": true}
	case "google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		return Schema{"type": "number", "format": "double", "nullable": true}
	case "google.protobuf.Empty":
		return Schema{"type": "object"}
	}
	return nil
}

// fromGoType returns the schema of a Go type as encoding/json writes it;
// map[string]any fields accept anything.
func fromGoType(t reflect.Type) Schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		props := Schema{}
		var required []any
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			props[name] = fromGoType(f.Type)
			if name == "name" && !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
		s := Schema{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return Schema{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
		}
		return Schema{"type": "object", "additionalProperties": fromGoType(t.Elem())}
	case reflect.Slice:
		return Schema{"type": "array", "items": fromGoType(t.Elem())}
	case reflect.String:
		return Schema{"type": "string"}
	case reflect.Bool:
		return Schema{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return Schema{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return Schema{"type": "number"}
	}
	return Schema{"x-kubernetes-preserve-unknown-fields": true}
}
