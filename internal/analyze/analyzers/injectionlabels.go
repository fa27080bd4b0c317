package analyzers

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// InjectionLabels reports namespaces labelled both for injection by the
// default injector and for a revision (IST0123): the two disagree about
// which injector serves the namespace.
type InjectionLabels struct{}

// Metadata describes the analyzer.
func (*InjectionLabels) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "injection.MultipleInjectionLabels", Description: "Checks a namespace does not carry both injection and revision labels",
		Codes: []*analyze.MessageType{analyze.NamespaceMultipleInjectionLabels}}
}

// Analyze runs the checks.
func (*InjectionLabels) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("Namespace") {
		ns, ok := r.Object.(*corev1.Namespace)
		if !ok {
			continue
		}
		var injection, revision []string
		for _, k := range []string{InjectionLabel, IstioInjectionLabel} {
			if v, ok := ns.Labels[k]; ok {
				injection = append(injection, k+"="+v)
			}
		}
		for _, k := range []string{RevisionLabel, IstioRevisionLabel} {
			if v, ok := ns.Labels[k]; ok {
				revision = append(revision, k+"="+v)
			}
		}
		if len(injection) == 0 || len(revision) == 0 {
			continue
		}
		all := append(injection, revision...)
		sort.Strings(all)
		ctx.Report(analyze.NamespaceMultipleInjectionLabels, r, "metadata.labels",
			"The namespace has more than one type of injection labels [%s], which may lead to undefined behavior. Make sure only one injection label exists.", strings.Join(all, " "))
	}
}
