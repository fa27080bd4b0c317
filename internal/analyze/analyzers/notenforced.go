package analyzers

import (
	"reflect"

	"google.golang.org/protobuf/proto"
	meshapi "istio.io/api/mesh/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/authz"
	"mesh.dev/mesh/internal/enforced"
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
