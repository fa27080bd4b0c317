package analyzers

import (
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"

	"mesh.dev/mesh/internal/analyze"
)

// Webhooks reports the mesh's admission webhooks (the injector's and the
// validator's: named mesh-... or istio-..., or labelled with a revision)
// that call a Service, or a port of it, that does not exist (IST0139):
// pods are then created without a proxy, or configuration writes fail.
// A Service in a namespace the snapshot knows nothing about is not
// judged.
type Webhooks struct{}

// Metadata describes the analyzer.
func (*Webhooks) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "webhook.Analyzer", Description: "Checks the mesh's webhooks call control-plane Services that exist",
		Codes: []*analyze.MessageType{analyze.InvalidWebhook}}
}

func meshWebhook(r *analyze.Resource) bool {
	if _, ok := r.Labels()[RevisionLabel]; ok {
		return true
	}
	if _, ok := r.Labels()[IstioRevisionLabel]; ok {
		return true
	}
	return strings.HasPrefix(r.Name, "mesh-") || strings.HasPrefix(r.Name, "istio-") || strings.HasPrefix(r.Name, "istiod-")
}

// Analyze runs the checks.
func (*Webhooks) Analyze(ctx *analyze.Context) {
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		for _, r := range ctx.ByKind(kind) {
			if !meshWebhook(r) {
				continue
			}
			var refs []*admissionv1.ServiceReference
			switch o := r.Object.(type) {
			case *admissionv1.MutatingWebhookConfiguration:
				for _, w := range o.Webhooks {
					refs = append(refs, w.ClientConfig.Service)
				}
			case *admissionv1.ValidatingWebhookConfiguration:
				for _, w := range o.Webhooks {
					refs = append(refs, w.ClientConfig.Service)
				}
			}
			for i, ref := range refs {
				if ref == nil || !ctx.NamespaceKnown(ref.Namespace) {
					continue
				}
				field := fmt.Sprintf("webhooks[%d].clientConfig.service", i)
				svc, ok := ctx.LookupHost(ref.Name+"."+ref.Namespace+".svc."+analyze.DomainSuffix, ref.Namespace)
				if !ok || svc.Service == nil {
					ctx.Report(analyze.InvalidWebhook, r, field+".name",
						"Webhook %d calls Service %s/%s, which does not exist: install the control plane there or point the webhook at its Service", i, ref.Namespace, ref.Name)
					continue
				}
				port := int32(443)
				if ref.Port != nil {
					port = *ref.Port
				}
				found := false
				for _, p := range svc.Service.Service.Spec.Ports {
					found = found || p.Port == port
				}
				if !found {
					ctx.Report(analyze.InvalidWebhook, r, field+".port",
						"Webhook %d calls port %d of Service %s/%s, which does not expose it", i, port, ref.Namespace, ref.Name)
				}
			}
		}
	}
}
