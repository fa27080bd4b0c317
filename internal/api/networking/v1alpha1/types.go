// Package v1alpha1 holds mesh's own networking kinds
// (networking.mesh.io/v1alpha1): MetaRoute, the routing rules of ports
// whose protocol is a request/response RPC protocol pilot sends through
// mesh-proxy's generic_proxy filter (Thrift, or a declarative codec) rather
// than an HTTP route table or a TCP proxy.
package v1alpha1

import (
	metav1alpha1 "istio.io/api/meta/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The group, version and kind of MetaRoute.
const (
	GroupName = "networking.mesh.io"
	Version   = "v1alpha1"
	Kind      = "MetaRoute"
	Plural    = "metaroutes"
)

// SchemeGroupVersion is the group/version of the kinds here.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: Version}

// Resource is the GroupVersionResource MetaRoutes are served at.
var Resource = SchemeGroupVersion.WithResource(Plural)

// MetaRoute routes the requests of RPC protocol ports (Thrift, or a
// declarative codec's) sent to its hosts, as a VirtualService does HTTP
// requests: the first route whose match the request satisfies decides.
type MetaRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetaRouteSpec `json:"spec"`
	// Status is written by pilot, in Istio's status shape: the condition
	// mesh.io/Enforced False and the validation message MSH0003 naming the
	// set fields the mesh does not carry out (mirror), as on Istio kinds.
	Status metav1alpha1.IstioStatus `json:"status"`
}

// MetaRouteSpec is a MetaRoute's rules.
type MetaRouteSpec struct {
	// Hosts are the services the rules apply to: Kubernetes short names
	// (reviews, reviews.ns), FQDNs, or ServiceEntry hosts, as a
	// VirtualService's hosts.
	Hosts []string `json:"hosts,omitempty"`
	// Routes are tried in order; a request no route matches goes to the
	// host it was sent to.
	Routes []MetaRouteRule `json:"routes,omitempty"`
	// ExportTo lists the namespaces whose proxies the MetaRoute applies
	// to, as a VirtualService's exportTo: "." its own, "*" every one, or
	// namespace names; unset: every namespace.
	ExportTo []string `json:"exportTo,omitempty"`
}

// MetaRouteRule is one route.
type MetaRouteRule struct {
	// Name names the route in proxy config (mesh proxy-config route).
	Name string `json:"name,omitempty"`
	// Match is what a request must have; unset matches every request.
	Match *MetaRouteMatch `json:"match,omitempty"`
	// Route are the destinations, weighted.
	Route []MetaRouteDestination `json:"route,omitempty"`
	// Timeout is each try's timeout ("1.5s"); unset: 15s, "0s": none.
	Timeout string `json:"timeout,omitempty"`
	// Retries retries a request that failed to reach an answer.
	Retries *MetaRetries `json:"retries,omitempty"`
	// Mirror would send a copy of each request to another destination;
	// mesh-proxy's generic_proxy cannot, so it is reported as not carried
	// out (mesh analyze MSH0003, the webhook's warning).
	Mirror *Destination `json:"mirror,omitempty"`
	// MirrorPercentage is the share of requests mirrored (not carried out).
	MirrorPercentage *Percent `json:"mirrorPercentage,omitempty"`
}

// MetaRouteMatch matches a request by its attributes.
type MetaRouteMatch struct {
	// Attributes by name: "method", "service", or a metadata key of the
	// protocol (a THeader header, a declarative codec's field or key);
	// every one listed must match.
	Attributes map[string]StringMatch `json:"attributes,omitempty"`
}

// StringMatch matches a string; exactly one of its fields is set.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"` // RE2, matched against the whole value
}

// MetaRouteDestination is one weighted destination.
type MetaRouteDestination struct {
	Destination Destination `json:"destination"`
	// Weight is the destination's share; with one destination it may be
	// left out, with several the weights must add up to 100.
	Weight int32 `json:"weight,omitempty"`
}

// Destination names a service, a subset of it (a DestinationRule's) and a
// port.
type Destination struct {
	Host   string        `json:"host"`
	Subset string        `json:"subset,omitempty"`
	Port   *PortSelector `json:"port,omitempty"`
}

// PortSelector picks a service port by number.
type PortSelector struct {
	Number int32 `json:"number,omitempty"`
}

// MetaRetries says how a request is retried.
type MetaRetries struct {
	// Attempts is the number of retries after the first try.
	Attempts int32 `json:"attempts,omitempty"`
	// RetryOn lists what is retried, comma-separated: connect-failure,
	// reset, timeout. Unset: connect-failure,reset.
	RetryOn string `json:"retryOn,omitempty"`
}

// Percent is a percentage, 0 to 100.
type Percent struct {
	Value float64 `json:"value,omitempty"`
}

// MetaRouteList is a list of MetaRoutes.
type MetaRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetaRoute `json:"items"`
}

// AddToScheme registers the kinds with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &MetaRoute{}, &MetaRouteList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
