package xds

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbuffer "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/labels"

	"mesh.dev/mesh/internal/authz"
	"mesh.dev/mesh/internal/pilot/model"
)

// MTLSMode is the effective PeerAuthentication mode for a workload port.
type MTLSMode int

// Inbound mTLS modes.
const (
	MTLSPermissive MTLSMode = iota
	MTLSStrict
	MTLSDisable
)

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		},
	}
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

func rawBufferSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.raw_buffer",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbuffer.RawBuffer{})},
	}
}

// meshCommonTLS presents the workload certificate and trusts the mesh root.
func meshCommonTLS(alpn ...string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsRef(SecretRootCA),
		},
		AlpnProtocols: alpn,
	}
}

func meshUpstreamTLS(sni string) *tlsv3.UpstreamTlsContext {
	return &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: meshCommonTLS("istio-peer-exchange", "istio")}
}

func meshDownstreamTLS() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         meshCommonTLS("h2", "http/1.1"),
		RequireClientCertificate: wrapperspb.Bool(true),
	}
}

// mtlsMode resolves PeerAuthentication for a workload's target port:
// workload policy (port-level first) over namespace policy over mesh policy.
func (pc *PushContext) mtlsMode(ns string, lbls map[string]string, port uint32) MTLSMode {
	var workload, namespace, mesh *securityv1.PeerAuthentication
	for _, pa := range pc.Snap.PeerAuthentications {
		switch {
		case pa.Namespace == ns && pa.Spec.Selector != nil && len(pa.Spec.Selector.MatchLabels) > 0:
			if labels.SelectorFromSet(pa.Spec.Selector.MatchLabels).Matches(labels.Set(lbls)) {
				workload = pa
			}
		case pa.Namespace == ns:
			namespace = pa
		case pa.Namespace == pc.Snap.RootNamespace && pa.Spec.Selector == nil:
			mesh = pa
		}
	}
	if workload != nil {
		if m, ok := workload.Spec.PortLevelMtls[port]; ok && m.Mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			return fromPAMode(m.Mode)
		}
	}
	for _, pa := range []*securityv1.PeerAuthentication{workload, namespace, mesh} {
		if pa != nil && pa.Spec.Mtls != nil && pa.Spec.Mtls.Mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			return fromPAMode(pa.Spec.Mtls.Mode)
		}
	}
	return MTLSPermissive
}

// portLevelPorts lists the ports the workload's own PeerAuthentication
// sets a mode for.
func (pc *PushContext) portLevelPorts(ns string, lbls map[string]string) []uint32 {
	var out []uint32
	for _, pa := range pc.Snap.PeerAuthentications {
		if pa.Namespace != ns || pa.Spec.Selector == nil || len(pa.Spec.Selector.MatchLabels) == 0 ||
			!labels.SelectorFromSet(pa.Spec.Selector.MatchLabels).Matches(labels.Set(lbls)) {
			continue
		}
		for port, m := range pa.Spec.PortLevelMtls {
			if m.GetMode() != securityapi.PeerAuthentication_MutualTLS_UNSET {
				out = append(out, port)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func fromPAMode(m securityapi.PeerAuthentication_MutualTLS_Mode) MTLSMode {
	switch m {
	case securityapi.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	case securityapi.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	}
	return MTLSPermissive
}

// spiffeID is the identity of a service account.
func spiffeID(ns, sa string) string {
	return "spiffe://" + model.DomainSuffix + "/ns/" + ns + "/sa/" + sa
}

func cidr(v string) *corev3.CidrRange {
	if r, ok := authz.ParseCIDR(v); ok {
		return r
	}
	return &corev3.CidrRange{AddressPrefix: v, PrefixLen: wrapperspb.UInt32(32)}
}
