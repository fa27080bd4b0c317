package gatewayapi

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Controller names. mesh answers for its own and, as a drop-in for istiod,
// for Istio's (GatewayClass `istio`).
const (
	ControllerName      gwv1.GatewayController = "mesh.dev/gateway-controller"
	IstioControllerName gwv1.GatewayController = "istio.io/gateway-controller"
)

// ClassName is the GatewayClass the default and demo profiles create.
const ClassName = "mesh"

// Labels and annotations pilot puts on what it generates.
const (
	// LabelGatewayName is on an automated deployment's pods and objects;
	// the generated Istio Gateway selects pods by it.
	LabelGatewayName = "gateway.networking.k8s.io/gateway-name"
	// LabelGatewayClass names the class an automated deployment is for.
	LabelGatewayClass = "gateway.networking.k8s.io/gateway-class-name"
	// AnnotationGeneratedFrom marks an Istio Gateway or VirtualService
	// pilot made from Gateway API objects: it exists only in pilot's
	// model, never in the API server, so nobody writes its status.
	AnnotationGeneratedFrom = "internal.mesh.io/generated-from"
	// AnnotationSameNamespace restricts a generated Gateway to the proxies
	// of its own namespace: a Gateway API Gateway is served by its own
	// deployment, not by every pod that happens to carry the label.
	AnnotationSameNamespace = "internal.mesh.io/same-namespace"
)

// RedirectPrefixRewrite starts an HTTPRedirect uri that replaces only the
// path prefix the route matched (Envoy's redirect prefix_rewrite), as
// istiod writes a Gateway API RequestRedirect's ReplacePrefixMatch: the
// generator turns "%PREFIX()%/new" into prefix_rewrite "/new".
const RedirectPrefixRewrite = "%PREFIX()%"

// Ours reports whether a GatewayClass's controllerName is one pilot serves.
func Ours(c gwv1.GatewayController) bool { return c == ControllerName || c == IstioControllerName }

// ListenerGatewayName is the name of the Istio Gateway generated for one
// listener of a Gateway API Gateway. "~" cannot occur in Kubernetes
// names, so it never meets a user's Istio Gateway.
func ListenerGatewayName(gateway string, listener gwv1.SectionName) string {
	return gateway + "~" + string(listener)
}

// DeploymentName is the name of a Gateway's automated Deployment, Service
// and ServiceAccount: <gateway>-<class>, as Istio names them.
func DeploymentName(gateway, class string) string { return gateway + "-" + class }
