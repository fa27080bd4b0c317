package enforced

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshapi "istio.io/api/mesh/v1alpha1"
)

// MeshConfigKind is the table's key for the mesh config (the `mesh` key of
// the mesh ConfigMap, values.meshConfig at install), whose paths start at
// meshConfig rather than spec.
const MeshConfigKind = "MeshConfig"

// MeshConfig lists the set fields of a mesh config that the mesh does not
// carry out, with paths from meshConfig (meshConfig.trustDomain).
func MeshConfig(mc *meshapi.MeshConfig) []Finding {
	out := Fields(MeshConfigKind, "meshConfig", "meshConfig", mc.ProtoReflect())
	// Values the table cannot judge: the mesh does what these say only
	// at the value it always has (the install's defaults set them so).
	if td := mc.GetTrustDomain(); td != "" && td != TrustDomain {
		out = append(out, Finding{Path: "meshConfig.trustDomain", Note: fmt.Sprintf("workload identities are spiffe://%s/..., so policies naming %s match nobody (they fail closed)", TrustDomain, td)})
	}
	if v := mc.GetEnableAutoMtls(); v != nil && !v.GetValue() {
		out = append(out, Finding{Path: "meshConfig.enableAutoMtls", Note: "false: auto mTLS stays on (a client uses mTLS to endpoints with a sidecar unless a DestinationRule says otherwise)"})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// TrustDomain is the only trust domain the mesh's CA issues identities in.
const TrustDomain = "cluster.local"

// ProxyConfigCarriedOut reports whether the injector acts on a ProxyConfig
// field (by JSON name) of a pod's proxy.istio.io/config annotation or of
// meshConfig.defaultConfig.
func ProxyConfigCarriedOut(field string) bool { return proxyConfigByInjector[field] }

// proxyConfigByInjector are the ProxyConfig fields the injector writes
// into the pod; mesh-proxy takes the rest of its configuration from pilot.
var proxyConfigByInjector = map[string]bool{
	"holdApplicationUntilProxyStarts": true,
	"terminationDrainDuration":        true,
	"concurrency":                     true,
	"proxyMetadata":                   true,
}

const (
	noProxyConfig   = "injected proxies do not get it: mesh-proxy takes its configuration from pilot, and the injector acts on holdApplicationUntilProxyStarts, terminationDrainDuration, concurrency and proxyMetadata only"
	noProvider      = "this provider type is not carried out: a Telemetry or CUSTOM policy naming it gets nothing from it (reported there)"
	fixedCapture    = "the sidecar's capture ports are fixed (15001 outbound, 15006 inbound, 15090 stats)"
	noIngress       = "Kubernetes Ingress resources are not read (the Gateway API and Istio Gateways are)"
	noAmbient       = "ambient mode (ztunnel, waypoints) is not run"
	defaultExportTo = "the exportTo of a resource of the kind that sets none (for Services, those without the networking.istio.io/exportTo annotation); unset, such a resource is visible in every namespace"
)

// meshConfigTable classifies the fields of the mesh config: what pilot,
// the injector and the telemetry policy read (docs/settings.md lists them).
func meshConfigTable() map[string]Entry {
	yes := Entry{Enforced: true}
	t := map[string]Entry{
		"meshConfig.rootNamespace":                   {Enforced: true, Note: "the namespace whose Sidecar, PeerAuthentication, AuthorizationPolicy and Telemetry apply mesh-wide; default the control plane's"},
		"meshConfig.protocolDetectionTimeout":        yes,
		"meshConfig.enableTracing":                   yes,
		"meshConfig.accessLogFile":                   yes,
		"meshConfig.accessLogFormat":                 yes,
		"meshConfig.accessLogEncoding":               yes,
		"meshConfig.enablePrometheusMerge":           {Enforced: true, Note: "the injector's prometheus.io annotations point at the agent's merged stats"},
		"meshConfig.outboundTrafficPolicy.mode":      {Enforced: true, Note: "ALLOW_ANY or REGISTRY_ONLY"},
		"meshConfig.outboundTrafficPolicy.tls":       {Note: "traffic to unknown destinations is passed through as it is"},
		"meshConfig.pathNormalization.normalization": yes,
		"meshConfig.defaultProviders.tracing":        yes,
		"meshConfig.defaultProviders.metrics":        yes,
		"meshConfig.defaultProviders.accessLogging":  yes,
		"meshConfig.extensionProviders.name":         yes,

		"meshConfig.proxyListenPort":                {Note: fixedCapture},
		"meshConfig.proxyInboundListenPort":         {Note: fixedCapture},
		"meshConfig.proxyHttpPort":                  {Note: "no HTTP proxy port is opened"},
		"meshConfig.connectTimeout":                 {Note: "clusters connect with a 10 s timeout, Istio's default; set connectTimeout in a DestinationRule"},
		"meshConfig.hboneIdleTimeout":               {Note: noAmbient},
		"meshConfig.tcpKeepalive":                   {Note: "no mesh-wide keepalive; set tcpKeepalive in a DestinationRule"},
		"meshConfig.ingressClass":                   {Note: noIngress},
		"meshConfig.ingressService":                 {Note: noIngress},
		"meshConfig.ingressControllerMode":          {Note: noIngress},
		"meshConfig.ingressSelector":                {Note: noIngress},
		"meshConfig.enableEnvoyAccessLogService":    {Note: "the access log service (ALS) is not run: use accessLogFile or an envoyFileAccessLog provider"},
		"meshConfig.disableEnvoyListenerLog":        {Note: "it has no effect"},
		"meshConfig.inboundTrafficPolicy":           {Note: "inbound traffic reaches the app on its pod IP, as Istio's default"},
		"meshConfig.configSources":                  {Note: "pilot reads the Kubernetes API server only"},
		"meshConfig.enableAutoMtls":                 {Enforced: true, Note: "true, the default; false is reported"},
		"meshConfig.trustDomain":                    {Enforced: true, Note: "cluster.local only; another is reported"},
		"meshConfig.trustDomainAliases":             {Note: "principals of an alias trust domain match nobody (policies fail closed)"},
		"meshConfig.caCertificates":                 {Note: "proxies trust pilot's CA only"},
		"meshConfig.defaultServiceExportTo":         {Enforced: true, Note: defaultExportTo},
		"meshConfig.defaultVirtualServiceExportTo":  {Enforced: true, Note: defaultExportTo},
		"meshConfig.defaultDestinationRuleExportTo": {Enforced: true, Note: defaultExportTo},
		"meshConfig.localityLbSetting":              {Note: "locality load balancing is not done: endpoints are balanced without regard to locality"},
		"meshConfig.zoneAwareLbSetting":             {Note: "locality load balancing is not done"},
		"meshConfig.dnsRefreshRate":                 {Note: "DNS clusters re-resolve on mesh-proxy's own schedule"},
		"meshConfig.h2UpgradePolicy":                {Note: "HTTP/1.1 is not upgraded to HTTP/2 between proxies"},
		"meshConfig.inboundClusterStatName":         {Note: "stat names are fixed"},
		"meshConfig.outboundClusterStatName":        {Note: "stat names are fixed"},
		"meshConfig.certificates":                   {Note: "pilot issues no DNS certificates"},
		"meshConfig.serviceSettings":                {Note: "no host is cluster-local"},
		"meshConfig.serviceScopeConfigs":            {Note: noAmbient},
		"meshConfig.verifyCertificateAtClient":      {Enforced: true, Note: "a SIMPLE or MUTUAL origination whose DestinationRule gives no caCertificates (nor credentialName) verifies the server against the system roots (/etc/ssl/certs/ca-certificates.crt) and its name (subjectAltNames, else SNI), unless insecureSkipVerify"},
		"meshConfig.ca":                             {Note: "pilot is the certificate authority"},
		"meshConfig.discoverySelectors":             {Note: "pilot watches every namespace"},
		"meshConfig.defaultHttpRetryPolicy":         {Note: "a route without retries retries twice on connection failures, Istio's default"},
		"meshConfig.defaultInboundHttpRetryPolicy":  {Note: "inbound routes do not retry"},
		"meshConfig.meshMTLS":                       {Note: "mesh mTLS uses mesh-proxy's TLS defaults (TLS 1.2 and above)"},
		"meshConfig.tlsDefaults":                    {Note: "TLS uses mesh-proxy's defaults"},
		"meshConfig.defaultTrafficPolicy":           {Note: "only DestinationRules set traffic policy"},
		"meshConfig.serviceEntryVisibility":         {Note: "it has no effect"},
	}

	// defaultConfig: what the injector writes into each pod, and the
	// tracing sample rate, which pilot reads for every sidecar.
	pc := (&meshapi.ProxyConfig{}).ProtoReflect().Descriptor()
	for i, fs := 0, pc.Fields(); i < fs.Len(); i++ {
		name := fs.Get(i).JSONName()
		p := "meshConfig.defaultConfig." + name
		switch {
		case proxyConfigByInjector[name]:
			protoLeavesAs(t, p, fs.Get(i), yes)
		case name == "tracing":
		default:
			t[p] = Entry{Note: noProxyConfig}
		}
	}
	childrenAs(t, "meshConfig.defaultConfig.tracing", &meshapi.Tracing{},
		Entry{Note: "tracing is configured by extensionProviders, defaultProviders and Telemetry; only sampling is read from here"}, "sampling")
	t["meshConfig.defaultConfig.tracing.sampling"] = Entry{Enforced: true, Note: "the mesh-wide sample rate when no Telemetry sets one"}

	// extensionProviders: the ext_authz, tracing, access log and
	// Prometheus types pilot builds from; the others are reported.
	ep := "meshConfig.extensionProviders."
	childrenAs(t, ep[:len(ep)-1], &meshapi.MeshConfig_ExtensionProvider{}, Entry{Note: noProvider},
		"name", "envoyExtAuthzHttp", "envoyExtAuthzGrpc", "zipkin", "opentelemetry", "prometheus", "envoyFileAccessLog")
	for _, kind := range []struct {
		name string
		msg  proto.Message
	}{{"envoyExtAuthzHttp", &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{}},
		{"envoyExtAuthzGrpc", &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{}}} {
		childrenAs(t, ep+kind.name, kind.msg, yes, "clearRouteCache")
		t[ep+kind.name+".clearRouteCache"] = Entry{Note: "routes are not recomputed after the check changes the request's headers; the route matched before the check is used"}
	}
	childrenAs(t, ep+"zipkin", &meshapi.MeshConfig_ExtensionProvider_ZipkinTracingProvider{},
		Entry{Note: "spans are sent without it"}, "service", "port", "maxTagLength", "enable64bitTraceId", "path", "traceContextOption")
	for _, f := range []string{"service", "port", "maxTagLength", "enable64bitTraceId", "path", "traceContextOption"} {
		t[ep+"zipkin."+f] = yes
	}
	childrenAs(t, ep+"opentelemetry", &meshapi.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{},
		Entry{Note: "spans are sent by OTLP/gRPC without it"}, "service", "port", "maxTagLength", "http")
	for _, f := range []string{"service", "port", "maxTagLength"} {
		t[ep+"opentelemetry."+f] = yes
	}
	t[ep+"opentelemetry.http"] = Entry{Note: "OTLP over HTTP is not sent: with it set, spans are propagated, not reported"}
	t[ep+"prometheus"] = yes
	for _, f := range []string{"path", "omitEmptyValues", "logFormat.text", "logFormat.labels"} {
		t[ep+"envoyFileAccessLog."+f] = yes
	}
	return t
}

// childrenAs classifies the direct fields of m at path as e (a message
// field as a whole subtree), except those named in except.
func childrenAs(t map[string]Entry, path string, m proto.Message, e Entry, except ...string) {
	skip := map[string]bool{}
	for _, x := range except {
		skip[x] = true
	}
	fs := m.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fs.Len(); i++ {
		if name := fs.Get(i).JSONName(); !skip[name] {
			if e.Enforced {
				protoLeavesAs(t, path+"."+name, fs.Get(i), e)
			} else {
				t[path+"."+name] = e
			}
		}
	}
}

// protoLeavesAs classifies every leaf at or below the field fd, at path,
// as e: enforced entries must be leaves.
func protoLeavesAs(t map[string]Entry, path string, fd protoreflect.FieldDescriptor, e Entry) {
	md := fd.Message()
	if fd.IsMap() {
		md = fd.MapValue().Message()
	}
	if md == nil || md.FullName().Parent() == "google.protobuf" || md.Fields().Len() == 0 {
		t[path] = e
		return
	}
	var paths []string
	protoLeaves(md, path, map[protoreflect.FullName]bool{}, &paths)
	for _, p := range paths {
		t[p] = e
	}
}

// protoLeaves lists every field path of md a user can set a value at (map
// values and list elements add no segment; a recursive message ends where
// it recurs).
func protoLeaves(md protoreflect.MessageDescriptor, path string, seen map[protoreflect.FullName]bool, out *[]string) {
	if seen[md.FullName()] {
		*out = append(*out, path)
		return
	}
	seen[md.FullName()] = true
	defer delete(seen, md.FullName())
	fs := md.Fields()
	for i := 0; i < fs.Len(); i++ {
		fd := fs.Get(i)
		p := path + "." + fd.JSONName()
		child := fd.Message()
		if fd.IsMap() {
			child = fd.MapValue().Message()
		}
		if child == nil || child.FullName().Parent() == "google.protobuf" || child.Fields().Len() == 0 {
			*out = append(*out, p)
			continue
		}
		protoLeaves(child, p, seen, out)
	}
}

func init() {
	table[MeshConfigKind] = meshConfigTable()
}
