package analyzers

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/resource"
)

// MeshConfigDeprecations reports the fields and values of the
// --meshConfigFile (or, without one, of the mesh ConfigMap analysed, which
// it also reports when pilot could not use it, IST0106) that istio.io/api
// marks deprecated (IST0002), as
// istioctl does for its Lightstep and OpenCensus tracing providers: this
// reads the deprecation marks of the API itself, so every such field is
// covered, those two included.
type MeshConfigDeprecations struct{}

// Metadata describes the analyzer.
func (*MeshConfigDeprecations) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "meshconfig.Deprecations", Description: "Checks the MeshConfig for deprecated fields and values",
		Codes: []*analyze.MessageType{analyze.Deprecated, analyze.SchemaValidationError}}
}

// Analyze runs the checks.
func (*MeshConfigDeprecations) Analyze(ctx *analyze.Context) {
	if ctx.Mesh != nil && ctx.Mesh.FromCluster != nil {
		fromConfigMap(ctx, ctx.Mesh.FromCluster)
		return
	}
	if ctx.Mesh == nil || ctx.Mesh.Config == nil || ctx.Mesh.ConfigFile == "" {
		return
	}
	r := &analyze.Resource{Kind: "MeshConfig", Name: "meshconfig", Namespace: ctx.Mesh.Root(),
		Source: resource.Source{File: ctx.Mesh.ConfigFile, Line: ctx.Mesh.ConfigLine()}, Meta: &metav1.ObjectMeta{}}
	deprecatedIn(ctx.Mesh.Config.ProtoReflect(), "", func(path, what string) {
		ctx.Report(analyze.Deprecated, r, path, "Deprecated: %s", what)
	})
}

// deprecatedIn calls report for each set field of m, at path (JSON
// names, with indices and keys), that is deprecated or holds a deprecated
// enum value, and walks on into set messages.
func deprecatedIn(m protoreflect.Message, path string, report func(path, what string)) {
	fields := m.Descriptor().Fields()
	for i, n := 0, fields.Len(); i < n; i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		p := fd.JSONName()
		if path != "" {
			p = path + "." + p
		}
		if opts, _ := fd.Options().(*descriptorpb.FieldOptions); opts.GetDeprecated() {
			report(p, fmt.Sprintf("field %s is deprecated", p))
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for j := 0; j < l.Len(); j++ {
				deprecatedValue(fd, l.Get(j), p+"["+strconv.Itoa(j)+"]", report)
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				deprecatedValue(fd.MapValue(), mv, p+"["+strconv.Quote(k.String())+"]", report)
				return true
			})
		default:
			deprecatedValue(fd, v, p, report)
		}
	}
}

func deprecatedValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, report func(path, what string)) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName().Parent() != "google.protobuf" {
			deprecatedIn(v.Message(), path, report)
		}
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			if opts, _ := ev.Options().(*descriptorpb.EnumValueOptions); opts.GetDeprecated() {
				report(path, fmt.Sprintf("value %s of %s is deprecated", ev.Name(), path))
			}
		}
	}
}

// fromConfigMap reports on the mesh ConfigMap analysis read the mesh
// config from: what pilot cannot use (analysis then ran under the
// defaults, as it says), and its deprecated fields.
func fromConfigMap(ctx *analyze.Context, cm *analyze.Resource) {
	field := "data." + analyze.MeshConfigKey
	if err := ctx.Mesh.ClusterErr; err != nil {
		ctx.Report(analyze.SchemaValidationError, cm, field,
			"The mesh config in this ConfigMap cannot be used: %v; fix the %q key (the rest of this analysis ran under the default mesh config)", err, analyze.MeshConfigKey)
		return
	}
	deprecatedIn(ctx.Mesh.Config.ProtoReflect(), "", func(path, what string) {
		ctx.Report(analyze.Deprecated, cm, field, "Deprecated in the mesh config: %s", what)
	})
}
