package xds

import (
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/model"
)

const detectedPorts = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.19.7.1, selector: {app: web}, ports: [{port: 7000}, {name: tcp-raw, port: 7100}, {name: db, port: 3306}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: default}
spec: {template: {metadata: {labels: {app: web}}}}
`

func listenerFilterNames(l *listenerv3.Listener) []string {
	var out []string
	for _, f := range l.GetListenerFilters() {
		out = append(out, f.GetName())
	}
	return out
}

func chainNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		out = append(out, fc.GetName())
	}
	return out
}

// TestDetectedPortsConfig: a Service port with no declared protocol gets
// Istio's detection config on both sides: the outbound listener an
// http_inspector, an HTTP chain (the port's routes, the VirtualService's
// virtual host in them) matching the detected values, and the TCP chain;
// the inbound listener an HTTP and a TCP chain per transport; the
// sidecar's cluster speaks the client's protocol, a gateway's HTTP/1.1. A
// port named tcp-* and the server-first 3306 get none of it.
func TestDetectedPortsConfig(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(detectedPorts)); err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = &meshapi.MeshConfig{ProtocolDetectionTimeout: durationpb.New(250 * time.Millisecond)}
	pc := NewPushContext(model.Build(1, w.Input()))
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))

	l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_7000")
	if got := listenerFilterNames(l); !slices.Contains(got, "envoy.filters.listener.http_inspector") {
		t.Errorf("0.0.0.0_7000 listener filters %v; want the http_inspector", got)
	}
	if l.GetListenerFiltersTimeout().AsDuration() != 250*time.Millisecond || !l.GetContinueOnListenerFiltersTimeout() {
		t.Errorf("0.0.0.0_7000 timeout %v, continue %v; want protocolDetectionTimeout 250ms, then the TCP chain", l.GetListenerFiltersTimeout().AsDuration(), l.GetContinueOnListenerFiltersTimeout())
	}
	var sawHTTP, sawTCP bool
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if len(m.GetPrefixRanges()) != 1 || m.GetPrefixRanges()[0].GetAddressPrefix() != "198.19.7.1" {
			continue
		}
		switch name := fc.GetFilters()[len(fc.GetFilters())-1].GetName(); {
		case slices.Equal(m.GetApplicationProtocols(), []string{"http/1.0", "http/1.1", "h2c"}) && m.GetTransportProtocol() == "raw_buffer":
			sawHTTP = name == hcmFilterName
		case len(m.GetApplicationProtocols()) == 0:
			sawTCP = name == tcpProxyFilterName
		}
	}
	if !sawHTTP || !sawTCP {
		t.Errorf("0.0.0.0_7000 chains %v: HTTP chain on detected values %v, TCP chain %v; want both for the service's address", chainNames(l), sawHTTP, sawTCP)
	}
	rc := find[*routev3.RouteConfiguration](t, r, resourcev3.RouteType, "7000")
	if !slices.ContainsFunc(rc.GetVirtualHosts(), func(vh *routev3.VirtualHost) bool {
		return strings.HasPrefix(vh.GetName(), "web.default.svc.cluster.local")
	}) {
		t.Errorf("route 7000 has no virtual host for web")
	}
	for _, name := range []string{"0.0.0.0_7100", "0.0.0.0_3306"} {
		l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, name)
		if got := listenerFilterNames(l); slices.Contains(got, "envoy.filters.listener.http_inspector") {
			t.Errorf("%s listener filters %v; want no detection (declared TCP, or a server-first port)", name, got)
		}
	}
	c := find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, "outbound|7000||web.default.svc.cluster.local")
	if !strings.Contains(c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].String(), "use_downstream_protocol_config") {
		t.Errorf("sidecar cluster of 7000: %v; want use_downstream_protocol_config", c.GetTypedExtensionProtocolOptions())
	}

	in := find[*listenerv3.Listener](t, generate(t, pc, w.PodProxy(model.SidecarProxy, "web-v1")), resourcev3.ListenerType, VirtualInbound)
	want := []string{"inbound_0.0.0.0_7000_mtls-http", "inbound_0.0.0.0_7000_mtls", "inbound_0.0.0.0_7000-http", "inbound_0.0.0.0_7000"}
	got := chainNames(in)
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("inbound chains %v; want %v", got, want)
			break
		}
	}
	if slices.Contains(got, "inbound_0.0.0.0_7100-http") || slices.Contains(got, "inbound_0.0.0.0_3306-http") {
		t.Errorf("inbound chains %v: an HTTP chain for a TCP port", got)
	}
	if in.GetListenerFiltersTimeout().AsDuration() != 250*time.Millisecond || !slices.Contains(listenerFilterNames(in), "envoy.filters.listener.http_inspector") {
		t.Errorf("inbound listener filters %v timeout %v; want the http_inspector and 250ms", listenerFilterNames(in), in.GetListenerFiltersTimeout().AsDuration())
	}

	gw := generate(t, pc, w.PodProxy(model.Router, "mesh-ingressgateway"))
	gc := find[*clusterv3.Cluster](t, gw, resourcev3.ClusterType, "outbound|7000||web.default.svc.cluster.local")
	if len(gc.GetTypedExtensionProtocolOptions()) != 0 {
		t.Errorf("gateway cluster of 7000: %v; want none (HTTP/1.1, as istiod writes a gateway's)", gc.GetTypedExtensionProtocolOptions())
	}
}

func TestParseProtocolDetects(t *testing.T) {
	for _, c := range []struct {
		port      uint32
		app, name string
		want      model.Protocol
	}{
		{7000, "", "", model.ProtocolAuto},
		{7000, "", "web", model.ProtocolAuto},
		{7000, "", "http-web", model.ProtocolHTTP},
		{7000, "", "tcp-x", model.ProtocolTCP},
		{7000, "", "mysql", model.ProtocolTCP},
		{7000, "kubernetes.io/h2c", "web", model.ProtocolHTTP2},
		{7000, "http", "tcp", model.ProtocolHTTP}, // appProtocol wins
		{7000, "foo", "http", model.ProtocolAuto}, // an appProtocol Istio does not know
		{25, "", "", model.ProtocolTCP},
		{53, "", "dns", model.ProtocolTCP},
		{3306, "", "db", model.ProtocolTCP},
		{27017, "", "", model.ProtocolTCP},
		{3306, "", "http", model.ProtocolHTTP},
	} {
		if got := model.ParseProtocol(c.port, c.app, c.name); got != c.want {
			t.Errorf("ParseProtocol(%d, %q, %q) = %s; want %s", c.port, c.app, c.name, got, c.want)
		}
	}
}

func TestProtocolDetectionTimeoutChecked(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, ""}, {time.Millisecond, ""}, {5 * time.Second, ""},
		{time.Microsecond, "want 0s"}, {-time.Second, "want 0s"},
	} {
		err := CheckProtocolDetectionTimeout(&meshapi.MeshConfig{ProtocolDetectionTimeout: durationpb.New(c.d)})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v; want %q", c.d, err, c.want)
		}
	}
}
