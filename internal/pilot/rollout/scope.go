package rollout

import (
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// scopeOf is the traffic a version of a resource touches, as the health
// gates measure it: policy (AuthorizationPolicy, PeerAuthentication,
// RequestAuthentication) is carried out by the server's proxy, so its
// requests are counted as reported there; everything else changes what
// the client's proxy does, and the requests it reports count, to the hosts
// the resource names when it names them (VirtualService and ServiceEntry
// hosts, a DestinationRule's host), else all of them.
func scopeOf(o metav1.Object, ns string) Scope {
	switch x := o.(type) {
	case *securityv1.AuthorizationPolicy, *securityv1.PeerAuthentication, *securityv1.RequestAuthentication:
		return Scope{Reporter: "destination"}
	case *networkingv1.VirtualService:
		return Scope{Reporter: "source", Hosts: fqdns(x.Spec.Hosts, ns)}
	case *networkingv1.DestinationRule:
		return Scope{Reporter: "source", Hosts: fqdns([]string{x.Spec.Host}, ns)}
	case *networkingv1.ServiceEntry:
		return Scope{Reporter: "source", Hosts: fqdns(x.Spec.Hosts, ns)}
	}
	return Scope{Reporter: "source"}
}

// fqdns qualifies short Kubernetes names as Istio does (reviews →
// reviews.NS.svc.cluster.local, reviews.other → reviews.other.svc...);
// "*" alone means every host, so no filter.
func fqdns(hosts []string, ns string) []string {
	var out []string
	for _, h := range hosts {
		switch {
		case h == "" || h == "*":
			return nil
		case strings.HasPrefix(h, "*"):
			out = append(out, h)
		case !strings.Contains(h, "."):
			out = append(out, h+"."+ns+".svc."+model.DomainSuffix)
		case strings.Count(h, ".") == 1:
			out = append(out, h+".svc."+model.DomainSuffix)
		default:
			out = append(out, h)
		}
	}
	return out
}
