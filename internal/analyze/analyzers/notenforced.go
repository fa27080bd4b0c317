package analyzers

import (
	"fmt"
	"reflect"
	"strings"

	"google.golang.org/protobuf/proto"
	meshapi "istio.io/api/mesh/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/authz"
	"mesh.dev/mesh/internal/enforced"
	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/resource"
)

// NotEnforced reports Istio settings this mesh accepts but does not carry
// out (MSH0003), one message per set field, named by its path, from the
// field table (internal/enforced) every kind's fields are classified in:
// nobody should believe a JWT check, a CORS policy or a locality setting
// works when it does not. For AuthorizationPolicy it also names the rule
// parts pilot cannot translate and what becomes of the rule.
type NotEnforced struct{}

// Metadata describes the analyzer.
func (*NotEnforced) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "mesh.NotEnforced", Description: "Checks for settings the mesh accepts but does not enforce",
		Codes: []*analyze.MessageType{analyze.NotEnforced}}
}

// Analyze runs the checks.
func (*NotEnforced) Analyze(ctx *analyze.Context) {
	for kind := range enforced.Specs {
		for _, r := range ctx.ByKind(kind) {
			spec := specOf(r)
			if spec == nil {
				continue
			}
			for _, f := range authz.Findings(kind, spec) {
				ctx.Report(analyze.NotEnforced, r, f.Path, "%s is not enforced: %s", f.Path, f.Note)
			}
			// A CUSTOM policy's provider comes from the mesh config
			// (--meshConfigFile); whether its service exists is pilot's to
			// say (its status), as analyze may not see every Service.
			if ap, ok := spec.(*securityapi.AuthorizationPolicy); ok {
				var mc *meshapi.MeshConfig // nil: the defaults, which name no provider
				if ctx.Mesh != nil {
					mc = ctx.Mesh.Config
				}
				if f := authz.ProviderFinding(ap, mc, nil); f != nil {
					ctx.Report(analyze.NotEnforced, r, f.Path, "%s is not enforced: %s", f.Path, f.Note)
				}
			}
		}
	}
	// mesh's own kinds (MetaRoute): their Go types' fields, by JSON name.
	for kind := range enforced.Types {
		for _, r := range ctx.ByKind(kind) {
			if r.Object == nil {
				continue
			}
			f := reflect.ValueOf(r.Object)
			if f.Kind() != reflect.Pointer || f.Elem().Kind() != reflect.Struct {
				continue
			}
			spec := f.Elem().FieldByName("Spec")
			if !spec.IsValid() {
				continue
			}
			for _, f := range enforced.Struct(kind, spec.Interface()) {
				ctx.Report(analyze.NotEnforced, r, f.Path, "%s is not enforced: %s", f.Path, f.Note)
			}
		}
	}
	proxyConfigNotCarriedOut(ctx)
	meshConfigNotCarriedOut(ctx)
}

// meshConfigNotCarriedOut reports the set fields of the --meshConfigFile
// that the mesh does not carry out, by their path in the file.
func meshConfigNotCarriedOut(ctx *analyze.Context) {
	if ctx.Mesh == nil || ctx.Mesh.Config == nil || ctx.Mesh.ConfigFile == "" {
		return
	}
	r := &analyze.Resource{Kind: "MeshConfig", Name: "meshconfig", Namespace: ctx.Mesh.Root(),
		Source: resource.Source{File: ctx.Mesh.ConfigFile, Line: ctx.Mesh.ConfigLine()}, Meta: &metav1.ObjectMeta{}}
	for _, f := range enforced.MeshConfig(ctx.Mesh.Config) {
		path := strings.TrimPrefix(f.Path, "meshConfig.")
		ctx.Report(analyze.NotEnforced, r, path, "%s is not enforced: %s", path, f.Note)
	}
}

// proxyConfigNotCarriedOut reports the proxy.istio.io/config fields of a
// pod or pod template that the injector does not act on (a value that does
// not parse is IST0125's, from annotations.Known).
func proxyConfigNotCarriedOut(ctx *analyze.Context) {
	for _, w := range ctx.Workloads() {
		if systemNamespaces[w.Namespace] {
			continue
		}
		v, ok := w.Annotations[inject.ProxyConfigAnnotation]
		if !ok {
			continue
		}
		pc, err := inject.ParseProxyConfig(v)
		if err != nil {
			continue
		}
		path := "metadata.annotations"
		if w.Template != nil {
			path = templatePath(w.Kind) + ".metadata.annotations"
		}
		for _, f := range inject.ProxyConfigNotCarriedOut(pc) {
			field := fmt.Sprintf("%s[%q].%s", path, inject.ProxyConfigAnnotation, f)
			ctx.Report(analyze.NotEnforced, w.Resource, field, "%s is not enforced: the injector acts on holdApplicationUntilProxyStarts, terminationDrainDuration, concurrency and proxyMetadata only", field)
		}
	}
}

// specOf returns the spec message of an istio.io/client-go object.
func specOf(r *analyze.Resource) proto.Message {
	if r.Object == nil {
		return nil
	}
	v := reflect.ValueOf(r.Object)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("Spec")
	if !f.IsValid() || !f.CanAddr() {
		return nil
	}
	m, _ := f.Addr().Interface().(proto.Message)
	return m
}
