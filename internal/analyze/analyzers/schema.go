package analyzers

import (
	"strings"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/validation"
)

// Schema reports schema and semantic validation findings for every Istio
// resource (IST0106 errors, IST0133 warnings) and deprecated fields (IST0002).
type Schema struct{}

// Metadata describes the analyzer.
func (*Schema) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "schema.Validation", Description: "Checks every Istio resource against the API schema and its semantic rules",
		Codes: []*analyze.MessageType{analyze.SchemaValidationError, analyze.SchemaWarning, analyze.Deprecated}}
}

// Analyze runs the checks.
func (*Schema) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.Resources {
		if r.Decoded == nil {
			if validation.IsIstioGroup(r.Group) && !otherIstioKinds[r.Group+"/"+r.Kind] {
				ctx.Report(analyze.SchemaValidationError, r, "kind", "Schema validation error: %s/%s %s is not a known Istio resource: expected one of %s",
					r.Group, r.Version, r.Kind, strings.Join(validation.Kinds(), ", "))
			}
			continue
		}
		for _, e := range r.Decoded.SchemaErrors {
			ctx.Report(analyze.SchemaValidationError, r, e.Field, "Schema validation error: %s", e.Message)
		}
		for _, e := range r.Decoded.Deprecated {
			ctx.Report(analyze.Deprecated, r, e.Field, "Deprecated: %s", e.Message)
		}
		if len(r.Decoded.SchemaErrors) > 0 {
			// The typed object is incomplete; semantic checks would repeat
			// the same problems in other words.
			continue
		}
		errs, warns := validation.Validate(r.Object)
		for _, e := range errs {
			ctx.Report(analyze.SchemaValidationError, r, e.Field, "Schema validation error: %s", e.Message)
		}
		for _, e := range warns {
			ctx.Report(analyze.SchemaWarning, r, e.Field, "Schema validation warning: %s", e.Message)
		}
	}
}

// otherIstioKinds are real kinds in the Istio groups that mesh does not
// validate; they are passed over rather than reported as unknown.
var otherIstioKinds = map[string]bool{
	"networking.istio.io/WorkloadGroup": true, "networking.istio.io/EnvoyFilter": true,
	"networking.istio.io/ProxyConfig": true,
}
