// Package rollout releases a change of a mesh config resource in stages:
// a resource annotated with rollout.mesh.io/stages keeps its last released
// version served to most proxies while the change (the candidate) goes to
// a growing share of the proxies it affects, stage by stage, and goes back
// to the released version everywhere when a proxy rejects it. The Manager
// decides what is released and who is staged; the xDS server
// (internal/pilot/xds) serves each proxy its version. docs/rollout.md is
// the contract; package annotation reads it.
package rollout

import "mesh.dev/mesh/internal/pilot/rollout/annotation"

// The annotations of the contract (see package annotation).
const (
	Prefix                       = annotation.Prefix
	AnnotationStages             = annotation.Stages
	AnnotationInterval           = annotation.Interval
	AnnotationMax5xxRatio        = annotation.Max5xxRatio
	AnnotationMaxLatencyIncrease = annotation.MaxLatencyIncrease
	AnnotationPromote            = annotation.Promote
	AnnotationAbort              = annotation.Abort
)

// Spec, Error and Request are package annotation's.
type (
	Spec    = annotation.Spec
	Error   = annotation.Error
	Request = annotation.Request
)

// Parse reads a resource's rollout annotations (annotation.Parse).
func Parse(annotations map[string]string) (*Spec, error) { return annotation.Parse(annotations) }

// ParseRequests reads the promote and abort requests on a resource
// (annotation.ParseRequests).
func ParseRequests(annotations map[string]string) (promote, abort *Request, err error) {
	return annotation.ParseRequests(annotations)
}

// PromoteValue is the promote annotation's value for a request.
func PromoteValue(gen int64, stage int, all bool) string {
	return annotation.PromoteValue(gen, stage, all)
}

// AbortValue is the abort annotation's value for a request.
func AbortValue(gen int64) string { return annotation.AbortValue(gen) }
