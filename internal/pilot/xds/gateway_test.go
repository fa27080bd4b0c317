package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
)

// gatewayService is the ingress gateway's Service as the gateways chart
// renders it: service ports 80 and 443 sent to container ports 8080 and 8443.
const gatewayService = `
apiVersion: v1
kind: Service
metadata: {name: mesh-ingressgateway, namespace: mesh-system}
spec:
  selector: {istio: ingressgateway}
  ports:
  - {name: status-port, port: 15021, targetPort: 15021}
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
  - {name: tcp, port: 31400, targetPort: 31400}
`

var ingressNode = model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system")

func TestGatewayBindsServiceTargetPorts(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(gatewayService + `
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["bookinfo.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /etc/certs/tls.crt, privateKey: /etc/certs/tls.key}
  - port: {number: 9000, name: http-other, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ["bookinfo.example.com"]
  gateways: [web]
  http:
  - route:
    - destination: {host: productpage, port: {number: 9080}}
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(2, w.Input()))
	r := generate(t, pc, ingressNode)
	got := r.Names(resourcev3.ListenerType)
	for _, want := range []string{"0.0.0.0_8080", "0.0.0.0_8443", "0.0.0.0_9000"} {
		if !contains(got, want) {
			t.Errorf("listeners %v: want %s (Gateway port mapped through the Service's targetPort, or kept when no Service exposes it)", got, want)
		}
	}
	for _, notWant := range []string{"0.0.0.0_80", "0.0.0.0_443"} {
		if contains(got, notWant) {
			t.Errorf("listeners %v: %s is the Service port, nothing is sent there", got, notWant)
		}
	}
	l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_8443")
	if port := l.GetAddress().GetSocketAddress().GetPortValue(); port != 8443 {
		t.Errorf("HTTPS listener binds %d, want 8443", port)
	}
	vh := routeFor(t, r, "http.8443", "bookinfo.example.com")
	if !contains(vh.Domains, "bookinfo.example.com:443") {
		t.Errorf("domains %v: clients send the port they dialled (443)", vh.Domains)
	}
}

// A gateway reaches a headless Service through its endpoints (EDS), as
// istiod does: a request comes to the gateway addressed to the gateway, so
// the original destination a sidecar uses for headless Services would be
// the gateway itself (the suite's HTTPRouteServiceTypes). Sidecars keep
// the original destination.
func TestGatewayReachesHeadlessServiceEndpoints(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(gatewayService + `
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 8080, targetPort: 3000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: default, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: http, port: 3000}]
endpoints: [{addresses: [198.18.7.7]}]
---
apiVersion: v1
kind: Pod
metadata: {name: tools, namespace: default, labels: {app: tools}}
spec: {containers: [{name: tools, image: tools}]}
status: {podIP: 198.18.7.8}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: ["db.example.com"]
  gateways: [web]
  http:
  - route:
    - destination: {host: db, port: {number: 8080}}
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(2, w.Input()))
	const name = "outbound|8080||db.default.svc.cluster.local"
	gw := generate(t, pc, ingressNode)
	if c := find[*clusterv3.Cluster](t, gw, resourcev3.ClusterType, name); c.GetType() != clusterv3.Cluster_EDS {
		t.Errorf("gateway's cluster for the headless Service is %v, want EDS", c.GetType())
	}
	cla := find[*endpointv3.ClusterLoadAssignment](t, gw, resourcev3.EndpointType, name)
	if len(cla.Endpoints) != 1 || len(cla.Endpoints[0].LbEndpoints) != 1 ||
		cla.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().Address != "198.18.7.7" ||
		cla.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().GetPortValue() != 3000 {
		t.Errorf("gateway's endpoints for the headless Service = %v, want 198.18.7.7:3000", cla.Endpoints)
	}
	sc := generate(t, pc, model.NodeID(model.SidecarProxy, "198.18.7.8", "tools", "default"))
	if c := find[*clusterv3.Cluster](t, sc, resourcev3.ClusterType, name); c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
		t.Errorf("sidecar's cluster for the headless Service is %v, want ORIGINAL_DST", c.GetType())
	}
}

// A destination's header operations apply to the traffic sent to it: on
// its weighted cluster, or on the route when it is the only destination
// (a Gateway API backendRef's header filters, the suite's
// HTTPRouteBackendRequestHeaderModifier).
func TestDestinationHeaderOperations(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(gatewayService + `
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ["split.example.com"]
  gateways: [web]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
      weight: 50
      headers: {request: {set: {backend: reviews}}, response: {remove: [x-internal]}}
    - destination: {host: details, port: {number: 9080}}
      weight: 50
      headers: {request: {add: {backend: details}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: one, namespace: default}
spec:
  hosts: ["one.example.com"]
  gateways: [web]
  http:
  - route:
    - destination: {host: details, port: {number: 9080}}
      headers: {request: {set: {backend: details}}}
`)); err != nil {
		t.Fatal(err)
	}
	r := generate(t, NewPushContext(model.Build(2, w.Input())), ingressNode)
	split := routeFor(t, r, "http.8080", "split.example.com").Routes[0].GetRoute().GetWeightedClusters().GetClusters()
	if len(split) != 2 {
		t.Fatalf("weighted clusters = %v", split)
	}
	if h := split[0].RequestHeadersToAdd; len(h) != 1 || h[0].Header.Key != "backend" || h[0].Header.Value != "reviews" ||
		h[0].AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || len(split[0].ResponseHeadersToRemove) != 1 {
		t.Errorf("reviews' cluster header operations: add %v remove %v", h, split[0].ResponseHeadersToRemove)
	}
	if h := split[1].RequestHeadersToAdd; len(h) != 1 || h[0].Header.Value != "details" || h[0].AppendAction != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
		t.Errorf("details' cluster header operations: %v", h)
	}
	one := routeFor(t, r, "http.8080", "one.example.com").Routes[0]
	if h := one.RequestHeadersToAdd; len(h) != 1 || h[0].Header.Key != "backend" || h[0].Header.Value != "details" {
		t.Errorf("a single destination's header operations on the route: %v", h)
	}
}
