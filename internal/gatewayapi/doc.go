// Package gatewayapi carries out the Kubernetes Gateway API
// (gateway.networking.k8s.io) as Istio does: GatewayClasses naming mesh's
// controller, their Gateways, and the HTTPRoutes and GRPCRoutes attached to
// them become Istio Gateways and VirtualServices, which pilot generates
// proxy config from like any other (one model), and each object gets the
// status the Gateway API spec asks for.
//
// Translate is a pure function of its Input; pilot's model calls it on
// every snapshot and its status writer writes what it returns.
package gatewayapi
