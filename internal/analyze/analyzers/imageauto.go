package analyzers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// ImageAuto reports containers with `image: auto`, which the injector
// replaces with the proxy image, in workloads injection does not target:
// a template is a warning (IST0146), a pod that was not injected an error
// (IST0147), since its container cannot start. A namespace the snapshot
// has no object for is not judged, as its labels are unknown.
type ImageAuto struct{}

// Metadata describes the analyzer.
func (*ImageAuto) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "injection.ImageAutoAnalyzer", Description: "Checks workloads with image: auto are targeted for injection",
		Codes: []*analyze.MessageType{analyze.ImageAutoWithoutInjectionWarning, analyze.ImageAutoWithoutInjectionError}}
}

// Analyze runs the checks.
func (*ImageAuto) Analyze(ctx *analyze.Context) {
	for _, w := range ctx.Workloads() {
		var spec *corev1.PodSpec
		field := "spec.template.spec.containers"
		if w.IsPod() {
			spec, field = &w.Pod.Spec, "spec.containers"
		} else {
			spec = &w.Template.Spec
		}
		auto := -1
		for i, c := range spec.Containers {
			if c.Image == "auto" {
				auto = i
				break
			}
		}
		if auto < 0 {
			continue
		}
		choice := podInjectionChoice(w)
		ns := ctx.Namespace(w.Namespace)
		if choice != "false" && (choice == "true" || ns == nil || NamespaceInjected(ns.Labels)) {
			continue
		}
		t := analyze.ImageAutoWithoutInjectionWarning
		if w.IsPod() {
			t = analyze.ImageAutoWithoutInjectionError
		}
		ctx.Report(t, w.Resource, fmt.Sprintf("%s[%d].image", field, auto),
			"%s %s contains `image: auto` but does not match any injection webhook selectors: label its namespace %s=enabled, or set the image", w.Kind, w.Name, InjectionLabel)
	}
}
