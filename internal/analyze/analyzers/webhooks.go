package analyzers

import (
	"fmt"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"mesh.dev/mesh/internal/analyze"
)

// Webhooks reports the mesh's admission webhooks (the injector's and the
// validator's: named mesh-... or istio-..., or labelled with a revision)
// that call a Service, or a port of it, that does not exist (IST0139):
// pods are then created without a proxy, or configuration writes fail.
// A Service in a namespace the snapshot knows nothing about is not
// judged. It also reports injection webhooks whose selectors overlap, as
// Istio does: a namespace or pod both select is injected twice.
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
	overlappingInjectors(ctx)
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

// injector is one webhook of a mesh MutatingWebhookConfiguration.
type injector struct {
	r    *analyze.Resource
	i    int
	name string // configuration/webhook
	ns   labels.Selector
	obj  labels.Selector
}

// overlappingInjectors reports the injection webhooks that select the
// same namespace and pod labels, over every mix of the injection labels
// (mesh's and Istio's, on namespaces and pods) and the revisions the
// webhooks name: a pod they all select would be injected by each.
func overlappingInjectors(ctx *analyze.Context) {
	var hooks []injector
	revs := map[string]bool{}
	for _, r := range ctx.ByKind("MutatingWebhookConfiguration") {
		o, ok := r.Object.(*admissionv1.MutatingWebhookConfiguration)
		if !ok || !meshWebhook(r) {
			continue
		}
		for _, k := range []string{RevisionLabel, IstioRevisionLabel} {
			if v, ok := r.Labels()[k]; ok {
				revs[v] = true
			}
		}
		for i, w := range o.Webhooks {
			if !strings.HasSuffix(w.Name, "mesh.io") && !strings.HasSuffix(w.Name, "istio.io") {
				continue
			}
			ns, err1 := selectorOf(w.NamespaceSelector)
			obj, err2 := selectorOf(w.ObjectSelector)
			if err1 != nil || err2 != nil {
				continue // the API server refuses such a selector
			}
			selectorRevisions(w.NamespaceSelector, revs)
			selectorRevisions(w.ObjectSelector, revs)
			hooks = append(hooks, injector{r: r, i: i, name: r.Name + "/" + w.Name, ns: ns, obj: obj})
		}
	}
	if len(hooks) < 2 {
		return
	}
	nsSets := labelMixes([]string{InjectionLabel, IstioInjectionLabel}, []string{"enabled", "disabled"}, revs)
	objSets := labelMixes([]string{PodInjectLabel, IstioPodInject}, []string{"true", "false"}, revs)
	overlaps := make([]map[string]bool, len(hooks))
	for _, nl := range nsSets {
		for _, ol := range objSets {
			var match []int
			for i, h := range hooks {
				if h.ns.Matches(nl) && h.obj.Matches(ol) {
					match = append(match, i)
				}
			}
			if len(match) < 2 {
				continue
			}
			for _, i := range match {
				for _, j := range match {
					if i != j {
						if overlaps[i] == nil {
							overlaps[i] = map[string]bool{}
						}
						overlaps[i][hooks[j].name] = true
					}
				}
			}
		}
	}
	for i, h := range hooks {
		if len(overlaps[i]) == 0 {
			continue
		}
		others := make([]string, 0, len(overlaps[i]))
		for n := range overlaps[i] {
			others = append(others, n)
		}
		sort.Strings(others)
		ctx.Report(analyze.InvalidWebhook, h.r, fmt.Sprintf("webhooks[%d]", h.i),
			"Webhook overlaps with others: [%s]. This may cause injection to occur twice: make their namespaceSelector and objectSelector disjoint", strings.Join(others, " "))
	}
}

// selectorOf is the selector a webhook applies; an absent one matches
// everything.
func selectorOf(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// selectorRevisions adds the revisions a selector names.
func selectorRevisions(s *metav1.LabelSelector, revs map[string]bool) {
	if s == nil {
		return
	}
	for _, k := range []string{RevisionLabel, IstioRevisionLabel} {
		if v, ok := s.MatchLabels[k]; ok {
			revs[v] = true
		}
		for _, e := range s.MatchExpressions {
			if e.Key == k {
				for _, v := range e.Values {
					revs[v] = true
				}
			}
		}
	}
}

// labelMixes lists the label sets to try: none, each key with each
// value, and each of those with each revision label.
func labelMixes(keys, values []string, revs map[string]bool) []labels.Set {
	base := []labels.Set{{}}
	for _, k := range keys {
		for _, v := range values {
			base = append(base, labels.Set{k: v})
		}
	}
	names := make([]string, 0, len(revs))
	for r := range revs {
		names = append(names, r)
	}
	sort.Strings(names)
	out := append([]labels.Set{}, base...)
	for _, rev := range names {
		for _, rk := range []string{RevisionLabel, IstioRevisionLabel} {
			for _, b := range base {
				s := labels.Set{rk: rev}
				for k, v := range b {
					s[k] = v
				}
				out = append(out, s)
			}
		}
	}
	return out
}
