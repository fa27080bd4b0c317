package xds

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/pilot/model"
)

const defaultConnectTimeout = 10 * time.Second

// outboundClusters returns the clusters of svc (every port, plus one per
// DestinationRule subset) for a proxy in proxyNS, memoised per push by host
// and the DestinationRule that applies.
func (pc *PushContext) outboundClusters(svc *model.Service, proxyNS string) []*item {
	dr := pc.destinationRule(proxyNS, svc)
	return memo(&pc.mu, pc.clusters, svc.Hostname+"|"+ruleKey(dr)+"|"+strconv.Itoa(int(svc.Resolution)), func() []*item { return pc.buildOutboundClusters(svc, dr, false) })
}

// routerClusters are outboundClusters as a gateway gets them: a port whose
// protocol is detected is spoken to in HTTP/1.1, not in the client's
// protocol, as istiod writes it for gateways (detection runs only in
// sidecars, and a gateway's clients negotiate h2 by ALPN that the app
// behind a port with no declared protocol may not speak).
func (pc *PushContext) routerClusters(svc *model.Service, proxyNS string) []*item {
	dr := pc.destinationRule(proxyNS, svc)
	return memo(&pc.mu, pc.clusters, svc.Hostname+"|"+ruleKey(dr)+"|"+strconv.Itoa(int(svc.Resolution))+"|router", func() []*item { return pc.buildOutboundClusters(svc, dr, true) })
}

func (pc *PushContext) buildOutboundClusters(svc *model.Service, dr *networkingv1.DestinationRule, router bool) []*item {
	var out []*item
	for _, p := range svc.Ports {
		var policy *networkingapi.TrafficPolicy
		if dr != nil {
			policy = dr.Spec.TrafficPolicy
		}
		out = append(out, newItem(OutboundClusterName(p.Port, "", svc.Hostname), withConfigRef(pc.buildCluster(svc, p, "", policy, router), dr)))
		if dr == nil {
			continue
		}
		for _, ss := range dr.Spec.Subsets {
			merged := mergePolicy(dr.Spec.TrafficPolicy, ss.TrafficPolicy)
			out = append(out, newItem(OutboundClusterName(p.Port, ss.Name, svc.Hostname), withConfigRef(pc.buildCluster(svc, p, ss.Name, merged, router), dr)))
		}
	}
	return out
}

// withConfigRef names the DestinationRule that shaped c in the cluster's
// istio filter metadata, in the API path form Envoy dumps from Istio carry,
// so `mesh proxy-config cluster` can show which rule a cluster came from.
func withConfigRef(c *clusterv3.Cluster, dr *networkingv1.DestinationRule) *clusterv3.Cluster {
	if dr == nil {
		return c
	}
	ref := "/apis/networking.istio.io/v1/namespaces/" + dr.Namespace + "/destination-rule/" + dr.Name
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio": {Fields: map[string]*structpb.Value{"config": structpb.NewStringValue(ref)}},
	}}
	return c
}

// mergePolicy overlays a subset's policy on the rule's, field group by field group.
func mergePolicy(base, over *networkingapi.TrafficPolicy) *networkingapi.TrafficPolicy {
	if over == nil {
		return base
	}
	if base == nil {
		return over
	}
	m := proto.Clone(base).(*networkingapi.TrafficPolicy)
	if over.LoadBalancer != nil {
		m.LoadBalancer = over.LoadBalancer
	}
	if over.ConnectionPool != nil {
		m.ConnectionPool = over.ConnectionPool
	}
	if over.OutlierDetection != nil {
		m.OutlierDetection = over.OutlierDetection
	}
	if over.Tls != nil {
		m.Tls = over.Tls
	}
	if len(over.PortLevelSettings) > 0 {
		m.PortLevelSettings = over.PortLevelSettings
	}
	return m
}

// portPolicy applies a policy's portLevelSettings for port.
func portPolicy(tp *networkingapi.TrafficPolicy, port uint32) *networkingapi.TrafficPolicy {
	if tp == nil {
		return nil
	}
	for _, pl := range tp.PortLevelSettings {
		if pl.Port != nil && pl.Port.Number == port {
			return &networkingapi.TrafficPolicy{
				LoadBalancer:     firstNonNil(pl.LoadBalancer, tp.LoadBalancer),
				ConnectionPool:   firstNonNil(pl.ConnectionPool, tp.ConnectionPool),
				OutlierDetection: firstNonNil(pl.OutlierDetection, tp.OutlierDetection),
				Tls:              firstNonNil(pl.Tls, tp.Tls),
			}
		}
	}
	return tp
}

func firstNonNil[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func (pc *PushContext) buildCluster(svc *model.Service, port model.Port, subset string, tp *networkingapi.TrafficPolicy, router bool) *clusterv3.Cluster {
	name := OutboundClusterName(port.Port, subset, svc.Hostname)
	tp = portPolicy(tp, port.Port)
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(defaultConnectTimeout),
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{},
	}
	switch svc.Resolution {
	case model.ResolutionDNS:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
		c.LoadAssignment = pc.loadAssignment(svc, port, nil, name)
	case model.ResolutionPassthrough:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
			ServiceName: name,
		}
	}
	// An HTTP port is spoken to in HTTP/1.1 whatever the client spoke, as
	// istiod writes it (h2UpgradePolicy's default, no upgrade): the
	// client's sidecar may take HTTP/2 (an egress gateway's port named
	// http2), the server may know only HTTP/1.1 (an external host).
	protoOpts := &upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
			},
		},
	}
	if port.Protocol == model.ProtocolHTTP2 || port.Protocol == model.ProtocolGRPC {
		protoOpts.UpstreamProtocolOptions = &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}
	}
	sniffed := port.Protocol == model.ProtocolAuto && !router
	if sniffed {
		// HTTP detected on the port goes upstream in the protocol the
		// client spoke (gRPC stays HTTP/2), as istiod writes a sidecar's
		// cluster of a detected port.
		protoOpts.UpstreamProtocolOptions = downstreamProtocol()
	}
	if tp != nil {
		applyLB(c, tp.LoadBalancer)
		applyConnectionPool(c, protoOpts, tp.ConnectionPool)
		applyOutlier(c, tp.OutlierDetection)
	}
	if port.Protocol.IsHTTP() || sniffed {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(protoOpts),
		}
	}
	applyUpstreamTLS(c, svc, port, subset, tp, pc.Snap.Mesh.GetVerifyCertificateAtClient().GetValue())
	return c
}

func applyLB(c *clusterv3.Cluster, lb *networkingapi.LoadBalancerSettings) {
	if lb == nil || c.LbPolicy == clusterv3.Cluster_CLUSTER_PROVIDED {
		return
	}
	switch x := lb.LbPolicy.(type) {
	case *networkingapi.LoadBalancerSettings_Simple:
		switch x.Simple {
		case networkingapi.LoadBalancerSettings_LEAST_REQUEST, networkingapi.LoadBalancerSettings_LEAST_CONN:
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		case networkingapi.LoadBalancerSettings_RANDOM:
			c.LbPolicy = clusterv3.Cluster_RANDOM
		case networkingapi.LoadBalancerSettings_ROUND_ROBIN:
			c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		}
	case *networkingapi.LoadBalancerSettings_ConsistentHash:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		if x.ConsistentHash.GetMaglev() != nil {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
		} else if rh := x.ConsistentHash.GetRingHash(); rh != nil && rh.MinimumRingSize > 0 {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(rh.MinimumRingSize),
			}}
		}
	}
}

func applyConnectionPool(c *clusterv3.Cluster, opts *upstreamhttp.HttpProtocolOptions, cp *networkingapi.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	th := &clusterv3.CircuitBreakers_Thresholds{}
	set := false
	if t := cp.Tcp; t != nil {
		if t.MaxConnections > 0 {
			th.MaxConnections = wrapperspb.UInt32(uint32(t.MaxConnections))
			set = true
		}
		if t.ConnectTimeout != nil {
			c.ConnectTimeout = durationpb.New(t.ConnectTimeout.AsDuration())
		}
	}
	if h := cp.Http; h != nil {
		if h.Http1MaxPendingRequests > 0 {
			th.MaxPendingRequests = wrapperspb.UInt32(uint32(h.Http1MaxPendingRequests))
			set = true
		}
		if h.Http2MaxRequests > 0 {
			th.MaxRequests = wrapperspb.UInt32(uint32(h.Http2MaxRequests))
			set = true
		}
		if h.MaxRetries > 0 {
			th.MaxRetries = wrapperspb.UInt32(uint32(h.MaxRetries))
			set = true
		}
		if h.MaxRequestsPerConnection > 0 || h.IdleTimeout != nil {
			opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{}
			if h.MaxRequestsPerConnection > 0 {
				opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(uint32(h.MaxRequestsPerConnection))
			}
			if h.IdleTimeout != nil {
				opts.CommonHttpProtocolOptions.IdleTimeout = durationpb.New(h.IdleTimeout.AsDuration())
			}
		}
	}
	if set {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	}
}

func applyOutlier(c *clusterv3.Cluster, od *networkingapi.OutlierDetection) {
	if od == nil {
		return
	}
	o := &clusterv3.OutlierDetection{}
	if od.Consecutive_5XxErrors != nil {
		o.Consecutive_5Xx = wrapperspb.UInt32(od.Consecutive_5XxErrors.Value)
		o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
	}
	if od.ConsecutiveGatewayErrors != nil {
		o.ConsecutiveGatewayFailure = wrapperspb.UInt32(od.ConsecutiveGatewayErrors.Value)
		o.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
	}
	if od.Interval != nil {
		o.Interval = durationpb.New(od.Interval.AsDuration())
	}
	if od.BaseEjectionTime != nil {
		o.BaseEjectionTime = durationpb.New(od.BaseEjectionTime.AsDuration())
	}
	if od.MaxEjectionPercent > 0 {
		o.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.MaxEjectionPercent))
	}
	if od.MinHealthPercent > 0 {
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(od.MinHealthPercent)}
	}
	c.OutlierDetection = o
}

// applyUpstreamTLS sets the cluster's transport socket: what the
// DestinationRule asks for, or — without one — Istio's auto mTLS, which
// speaks mesh mTLS only to endpoints labelled as having a sidecar. With
// verifyAtClient (meshConfig.verifyCertificateAtClient) a SIMPLE or
// MUTUAL origination the rule gives no CA for is verified against the
// system's roots, as Istio's is.
func applyUpstreamTLS(c *clusterv3.Cluster, svc *model.Service, port model.Port, subset string, tp *networkingapi.TrafficPolicy, verifyAtClient bool) {
	sni := fmt.Sprintf("outbound_.%d_.%s_.%s", port.Port, subset, svc.Hostname)
	var tls *networkingapi.ClientTLSSettings
	if tp != nil {
		tls = tp.Tls
	}
	if tls == nil {
		if svc.MeshExternal {
			return
		}
		c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
			{
				Name:            "tlsMode-istio",
				Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
				TransportSocket: tlsSocket(meshUpstreamTLS(sni)),
			},
			{
				Name:            "tlsMode-disabled",
				Match:           &structpb.Struct{},
				TransportSocket: rawBufferSocket(),
			},
		}
		return
	}
	switch tls.Mode {
	case networkingapi.ClientTLSSettings_ISTIO_MUTUAL:
		// As istiod: the rule's sni replaces the cluster's (the egress
		// gateway's ISTIO_MUTUAL server matches on it, an east-west gateway
		// routes by it), and its subjectAltNames are checked against the
		// peer's mesh certificate besides the mesh root.
		if tls.Sni != "" {
			sni = tls.Sni
		}
		ctx := meshUpstreamTLS(sni)
		if len(tls.SubjectAltNames) > 0 {
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: meshSANMatchers(tls.SubjectAltNames)},
					ValidationContextSdsSecretConfig: sdsRef(SecretRootCA),
				},
			}
		}
		c.TransportSocket = tlsSocket(ctx)
	case networkingapi.ClientTLSSettings_SIMPLE, networkingapi.ClientTLSSettings_MUTUAL:
		ctx := &tlsv3.UpstreamTlsContext{Sni: tls.Sni, CommonTlsContext: &tlsv3.CommonTlsContext{}}
		if ctx.Sni == "" && svc.MeshExternal {
			ctx.Sni = svc.Hostname
		}
		if tls.CredentialName != "" {
			// Served to gateways only (clientCredentials), as in Istio;
			// a sidecar never gets the secret, so its handshakes fail.
			name := credential.SDSPrefix + credential.Name(tls.CredentialName)
			ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(name)}
			if tls.CaCertificates == "" {
				// The server is checked against the Secret's CA (NAME-cacert
				// or the CA in NAME; none: not checked), with the SANs.
				ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
					CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
						DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(tls.SubjectAltNames)},
						ValidationContextSdsSecretConfig: sdsRef(name + credential.CASuffix),
					},
				}
			}
		} else if tls.Mode == networkingapi.ClientTLSSettings_MUTUAL {
			ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: fileSource(tls.ClientCertificate),
				PrivateKey:       fileSource(tls.PrivateKey),
			}}
		}
		switch {
		case tls.CaCertificates != "":
			vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(tls.CaCertificates), MatchTypedSubjectAltNames: sanMatchers(tls.SubjectAltNames)}
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		case verifyAtClient && tls.CredentialName == "" && !tls.GetInsecureSkipVerify().GetValue():
			// The server's name is checked too: the subjectAltNames, else
			// the name the proxy asks for (SNI), as a TLS client would.
			sans := tls.SubjectAltNames
			if len(sans) == 0 && ctx.Sni != "" {
				sans = []string{ctx.Sni}
			}
			vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(SystemRoots), MatchTypedSubjectAltNames: sanMatchers(sans)}
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
		c.TransportSocket = tlsSocket(ctx)
	}
}

// SystemRoots is where mesh-proxy's image keeps the system's CA bundle
// (Debian's), which verifyCertificateAtClient verifies servers against.
const SystemRoots = "/etc/ssl/certs/ca-certificates.crt"

func sanMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, san := range sans {
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_DNS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
		})
	}
	return out
}

// meshSANMatchers matches subjectAltNames against mesh certificates,
// whose identities are spiffe:// URIs: a name of that form is matched as a
// URI SAN, any other as a DNS one.
func meshSANMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	out := sanMatchers(sans)
	for i, san := range sans {
		if strings.HasPrefix(san, "spiffe://") {
			out[i].SanType = tlsv3.SubjectAltNameMatcher_URI
		}
	}
	return out
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// loadAssignment builds the endpoints of one cluster: the service's endpoints
// on port whose labels match the subset's.
func (pc *PushContext) loadAssignment(svc *model.Service, port model.Port, subsetLabels map[string]string, name string) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, ep := range pc.Snap.Endpoints(svc.Hostname) {
		if ep.ServicePort != port.Port || !labelsMatch(subsetLabels, ep.Labels) {
			continue
		}
		lb := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(ep.Address, ep.Port),
			}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		}
		if !ep.Ready {
			lb.HealthStatus = corev3.HealthStatus_UNHEALTHY
		}
		if ep.Labels[model.TLSModeLabel] == "istio" {
			lb.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			}}
		}
		lbs = append(lbs, lb)
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(lbs) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	return cla
}

func labelsMatch(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// outboundEndpoints returns the load assignments of every EDS cluster of
// svc for a proxy in proxyNS (subsets come from its DestinationRule).
func (pc *PushContext) outboundEndpoints(svc *model.Service, proxyNS string) []*item {
	dr := pc.destinationRule(proxyNS, svc)
	return memo(&pc.mu, pc.endpoints, svc.Hostname+"|"+ruleKey(dr)+"|"+strconv.Itoa(int(svc.Resolution)), func() []*item { return pc.buildOutboundEndpoints(svc, dr) })
}

func (pc *PushContext) buildOutboundEndpoints(svc *model.Service, dr *networkingv1.DestinationRule) []*item {
	var out []*item
	if svc.Resolution == model.ResolutionEndpoints {
		for _, p := range svc.Ports {
			name := OutboundClusterName(p.Port, "", svc.Hostname)
			out = append(out, newItem(name, pc.loadAssignment(svc, p, nil, name)))
			if dr == nil {
				continue
			}
			for _, ss := range dr.Spec.Subsets {
				name := OutboundClusterName(p.Port, ss.Name, svc.Hostname)
				out = append(out, newItem(name, pc.loadAssignment(svc, p, ss.Labels, name)))
			}
		}
	}
	return out
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// staticCluster is a cluster with fixed endpoints (inbound, pass-through).
func staticCluster(name, addr string, port uint32) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr, port)}},
			}}}},
		},
	}
}

// inboundCluster reaches the app on its port; a port of protocol grpc or
// http2 is spoken to in HTTP/2 (prior knowledge), as istiod writes it, so
// a gRPC app behind the sidecar gets the protocol it serves.
func inboundCluster(p inboundPort) *clusterv3.Cluster {
	c := staticCluster(InboundClusterName(p.port), "127.0.0.1", p.port)
	if p.protocol == model.ProtocolAuto {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttp.HttpProtocolOptions{UpstreamProtocolOptions: downstreamProtocol()}),
		}
	}
	if p.protocol == model.ProtocolHTTP2 || p.protocol == model.ProtocolGRPC {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttp.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
					},
				},
			}),
		}
	}
	return c
}

// downstreamProtocol speaks to the upstream in the HTTP version the
// downstream request came in.
func downstreamProtocol() *upstreamhttp.HttpProtocolOptions_UseDownstreamProtocolConfig {
	return &upstreamhttp.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &upstreamhttp.HttpProtocolOptions_UseDownstreamHttpConfig{
		HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
		Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
	}}
}

// fixedClusters are the clusters every sidecar has.
func fixedClusters() []*item {
	return []*item{
		newItem(BlackHoleCluster, &clusterv3.Cluster{
			Name:                 BlackHoleCluster,
			ConnectTimeout:       durationpb.New(defaultConnectTimeout),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		}),
		newItem(PassthroughCluster, &clusterv3.Cluster{
			Name:                 PassthroughCluster,
			ConnectTimeout:       durationpb.New(defaultConnectTimeout),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		}),
		newItem(InboundPassthroughCluster, &clusterv3.Cluster{
			Name:                 InboundPassthroughCluster,
			ConnectTimeout:       durationpb.New(defaultConnectTimeout),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		}),
	}
}

// mustAny packs m deterministically: resources are versioned by their
// bytes, and a map inside (RBAC policies by name) must not give two
// versions of the same config.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true})
	if err != nil {
		panic(fmt.Sprintf("pack %T: %v", m, err))
	}
	return a
}
