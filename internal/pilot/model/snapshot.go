// Package model holds pilot's view of the world: an immutable snapshot of the
// services, endpoints, workloads and Istio configuration it generates proxy
// config from. A new Snapshot is built for every (debounced) change and is
// never mutated afterwards, so generators may read it without locks.
package model

import (
	"slices"
	"sort"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/hostmatch"
)

// DomainSuffix is the cluster DNS suffix services are named under.
const DomainSuffix = "cluster.local"

// Protocol is the application protocol of a service port, as Istio infers it.
type Protocol string

// The protocols pilot distinguishes.
const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTP2 Protocol = "HTTP2"
	ProtocolGRPC  Protocol = "GRPC"
	ProtocolHTTPS Protocol = "HTTPS"
	ProtocolTLS   Protocol = "TLS"
	ProtocolTCP   Protocol = "TCP"
	// ProtocolThrift is Apache Thrift: mesh-proxy's generic_proxy filter
	// with the Thrift codec routes its requests by MetaRoutes (Istio
	// proxies it as TCP).
	ProtocolThrift Protocol = "THRIFT"
	// ProtocolAuto is a port whose protocol nothing declares (Istio's
	// "UnsupportedProtocol"): the proxies detect it per connection, HTTP/1.x
	// and HTTP/2 from the first bytes, anything else TCP.
	ProtocolAuto Protocol = "AUTO"
)

// IsHTTP reports whether traffic on the protocol is routed by HTTP rules.
func (p Protocol) IsHTTP() bool {
	return p == ProtocolHTTP || p == ProtocolHTTP2 || p == ProtocolGRPC
}

// MaybeHTTP reports whether a connection on the port may be routed by HTTP
// rules: a declared HTTP protocol, or one detected on the connection.
func (p Protocol) MaybeHTTP() bool { return p.IsHTTP() || p == ProtocolAuto }

// serverFirstPorts are the ports Istio takes as TCP when nothing declares
// their protocol: their usual protocols speak first from the server (SMTP,
// DNS, MySQL, MongoDB), which detection on the client's first bytes would
// stall.
var serverFirstPorts = map[uint32]bool{25: true, 53: true, 3306: true, 27017: true}

// ParseProtocol infers a port's protocol from appProtocol or the name prefix
// ("http-web", "grpc", "tcp", ...), as Istio does: a port neither declares
// is ProtocolAuto (detected per connection), except the server-first ports
// 25, 53, 3306 and 27017, which are TCP. Thrift is named "thrift",
// "thrift-*" or "tcp-thrift-*" (a name Istio reads as TCP).
func ParseProtocol(port uint32, appProtocol, name string) Protocol {
	cand := strings.ToLower(appProtocol)
	if cand == "" {
		cand = strings.ToLower(name)
		if rest, ok := strings.CutPrefix(cand, "tcp-thrift"); ok && (rest == "" || rest[0] == '-') {
			return ProtocolThrift
		}
		if i := strings.IndexByte(cand, '-'); i >= 0 {
			cand = cand[:i]
		}
	}
	switch cand {
	case "http", "http1.1", "kubernetes.io/h1", "kubernetes.io/ws":
		return ProtocolHTTP
	case "http2", "h2c", "kubernetes.io/h2c":
		return ProtocolHTTP2
	case "grpc", "grpc-web":
		return ProtocolGRPC
	case "https", "kubernetes.io/wss":
		return ProtocolHTTPS
	case "tls":
		return ProtocolTLS
	case "thrift":
		return ProtocolThrift
	case "tcp", "udp", "mongo", "mysql", "redis":
		// Declared, and not HTTP: detection never runs. Istio's filters
		// for mongo, mysql and redis are off by default, so it proxies
		// them as TCP; a TCP port named udp-* is not detected either.
		return ProtocolTCP
	}
	if serverFirstPorts[port] {
		return ProtocolTCP
	}
	return ProtocolAuto
}

// Resolution says how a proxy finds the endpoints of a service.
type Resolution int

// Resolutions.
const (
	ResolutionEndpoints   Resolution = iota // pilot sends the endpoints (EDS)
	ResolutionDNS                           // the proxy resolves the hostname
	ResolutionPassthrough                   // the original destination is used
)

// Port is one port of a service.
type Port struct {
	Name       string
	Port       uint32
	TargetPort uint32 // 0 when the target is named or unknown
	Protocol   Protocol
}

// Service is a Kubernetes Service or a ServiceEntry host.
type Service struct {
	Hostname     string // reviews.default.svc.cluster.local, or a ServiceEntry host
	Name         string
	Namespace    string
	Address      string // ClusterIP or ServiceEntry address; "" when none
	Ports        []Port
	Selector     map[string]string // pods/workload entries backing it
	Resolution   Resolution
	MeshExternal bool
	ExportTo     []string // "*", ".", or namespaces; empty means everywhere
	// ServiceEntry marks a host that comes from a ServiceEntry.
	ServiceEntry bool
	// AutoAddress is the address DNS auto-allocation gave a ServiceEntry
	// host without addresses (autoAllocate); proxies that ask for
	// ISTIO_META_DNS_AUTO_ALLOCATE see it as the host's Address.
	AutoAddress string
}

// PortByNumber returns the service port with number n.
func (s *Service) PortByNumber(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Port == n {
			return p, true
		}
	}
	return Port{}, false
}

// VisibleTo reports whether the service is exported to namespace ns.
func (s *Service) VisibleTo(ns string) bool { return hostmatch.Exported(s.ExportTo, s.Namespace, ns) }

// VirtualServiceExportTo is vs's exportTo, or the mesh config's
// defaultVirtualServiceExportTo when it has none.
func (s *Snapshot) VirtualServiceExportTo(vs *networkingv1.VirtualService) []string {
	return hostmatch.ExportToOr(vs.Spec.ExportTo, s.Mesh.GetDefaultVirtualServiceExportTo())
}

// DestinationRuleExportTo is dr's exportTo, or the mesh config's
// defaultDestinationRuleExportTo when it has none.
func (s *Snapshot) DestinationRuleExportTo(dr *networkingv1.DestinationRule) []string {
	return hostmatch.ExportToOr(dr.Spec.ExportTo, s.Mesh.GetDefaultDestinationRuleExportTo())
}

// Endpoint is one backend address of a service port.
type Endpoint struct {
	Address        string
	Port           uint32 // the port to connect to
	ServicePort    uint32 // the service port it backs
	Labels         map[string]string
	ServiceAccount string // SPIFFE-relevant service account, "" when unknown
	Namespace      string
	Workload       string // pod or WorkloadEntry name
	Ready          bool
}

// Input is the raw world a Snapshot is built from.
type Input struct {
	Services               []*corev1.Service
	EndpointSlices         []*discoveryv1.EndpointSlice
	Pods                   []*corev1.Pod
	Namespaces             []*corev1.Namespace
	Secrets                []*corev1.Secret // gateway credentials; see credential.Served
	VirtualServices        []*networkingv1.VirtualService
	DestinationRules       []*networkingv1.DestinationRule
	Gateways               []*networkingv1.Gateway
	ServiceEntries         []*networkingv1.ServiceEntry
	Sidecars               []*networkingv1.Sidecar
	WorkloadEntries        []*networkingv1.WorkloadEntry
	PeerAuthentications    []*securityv1.PeerAuthentication
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
	RequestAuthentications []*securityv1.RequestAuthentication
	Telemetries            []*telemetryv1.Telemetry
	MetaRoutes             []*meshnet.MetaRoute
	GatewayClasses         []*gwv1.GatewayClass
	KubeGateways           []*gwv1.Gateway // the Gateway API's Gateways
	HTTPRoutes             []*gwv1.HTTPRoute
	GRPCRoutes             []*gwv1.GRPCRoute
	ReferenceGrants        []*gwv1.ReferenceGrant
	RootNamespace          string // mesh-wide policy lives here; default mesh-system
	// SecretNamespaces are the namespaces Secrets were read from; "*"
	// among them is every namespace, none is no Secrets at all
	// (Watcher.SecretNamespaces).
	SecretNamespaces []string
	// SecretNamespacesPending are namespaces pilot has started to read
	// Secrets in (Watcher follows the gateways' namespaces) and has not
	// listed yet: their Secrets are not known, for a moment.
	SecretNamespacesPending []string
	// Mesh is the mesh config pilot was started with (nil: Istio's defaults);
	// pilot reads it once, so it is the same in every snapshot.
	Mesh *meshconfig.MeshConfig
	// JWKSFetch is who fetches a RequestAuthentication's jwksUri (pilot's
	// --jwks-fetch-mode, the same in every snapshot); "" is JWKSIstiod.
	JWKSFetch JWKSFetchMode
}

// Snapshot is an immutable, indexed view of one Input.
type Snapshot struct {
	Version  uint64
	Services []*Service // sorted by hostname

	servicesByHost map[string]*Service
	// selectorIndex finds the services selecting a workload: by namespace,
	// then by the "key=value" of each service's smallest selector key.
	selectorIndex map[string]map[string][]*Service
	endpoints     map[string][]*Endpoint // by hostname, sorted
	podsByIP      map[string]*corev1.Pod
	pods          map[string]*corev1.Pod // ns/name
	namespaces    map[string]*corev1.Namespace
	secrets       map[string]*corev1.Secret // ns/name
	secretNS      map[string]bool           // namespaces Secrets were read in; "*": all
	secretPending map[string]bool           // namespaces whose Secrets are being listed
	gatewaySecret map[string]*GatewaySecretUse

	VirtualServices        []*networkingv1.VirtualService
	DestinationRules       []*networkingv1.DestinationRule
	Gateways               []*networkingv1.Gateway
	Sidecars               []*networkingv1.Sidecar
	WorkloadEntries        []*networkingv1.WorkloadEntry
	ServiceEntries         []*networkingv1.ServiceEntry
	PeerAuthentications    []*securityv1.PeerAuthentication
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
	RequestAuthentications []*securityv1.RequestAuthentication
	Telemetries            []*telemetryv1.Telemetry
	MetaRoutes             []*meshnet.MetaRoute
	RootNamespace          string
	Mesh                   *meshconfig.MeshConfig
	JWKSFetch              JWKSFetchMode

	// The Gateway API objects, and what internal/gatewayapi made of them:
	// its Istio Gateways and VirtualServices are in Gateways and
	// VirtualServices too (marked gatewayapi.AnnotationGeneratedFrom), so
	// the generator reads one model.
	GatewayClasses  []*gwv1.GatewayClass
	KubeGateways    []*gwv1.Gateway
	HTTPRoutes      []*gwv1.HTTPRoute
	GRPCRoutes      []*gwv1.GRPCRoute
	ReferenceGrants []*gwv1.ReferenceGrant
	GatewayAPI      *gatewayapi.Output

	// in holds the core objects the snapshot was built from, for the kind
	// table's accessors (Kind.Objects).
	in Input
	// input is the Input as given to Build, so a variant of the snapshot
	// with some objects swapped (a staged rollout's released and candidate
	// versions, internal/pilot/rollout) can be built from it.
	input Input
}

// Input returns the Input the snapshot was built from. Its lists are
// shared with the snapshot: change them only through Kind.Put, which
// copies.
func (s *Snapshot) Input() Input { return s.input }

// ServiceByHost returns the service named host, or nil.
func (s *Snapshot) ServiceByHost(host string) *Service { return s.servicesByHost[host] }

// Endpoints returns the endpoints of the service named host.
func (s *Snapshot) Endpoints(host string) []*Endpoint { return s.endpoints[host] }

// PodByIP returns the pod with the given IP, or nil.
func (s *Snapshot) PodByIP(ip string) *corev1.Pod { return s.podsByIP[ip] }

// Pod returns the pod ns/name, or nil.
func (s *Snapshot) Pod(ns, name string) *corev1.Pod { return s.pods[ns+"/"+name] }

// Secret returns the Secret ns/name pilot may serve as a credential, or nil.
func (s *Snapshot) Secret(ns, name string) *corev1.Secret { return s.secrets[ns+"/"+name] }

// Namespace returns the namespace called name, or nil.
func (s *Snapshot) Namespace(name string) *corev1.Namespace { return s.namespaces[name] }

// ServicesFor returns the services in ns whose selector matches lbls: the
// services a workload with those labels serves.
func (s *Snapshot) ServicesFor(ns string, lbls map[string]string) []*Service {
	// Candidates come from the index by one selector label, so a lookup
	// costs the workload's labels, not the namespace's services.
	var out []*Service
	idx := s.selectorIndex[ns]
	for k, v := range lbls {
		for _, svc := range idx[k+"="+v] {
			if selects(svc.Selector, lbls) {
				out = append(out, svc)
			}
		}
	}
	if len(out) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	}
	return out
}

// selects is labels.SelectorFromSet(sel).Matches(lbls) without building a
// selector: it runs once per proxy and service of its namespace on a push.
func selects(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if have, ok := lbls[k]; !ok || have != v {
			return false
		}
	}
	return true
}

// KubeHostname is the DNS name of Service name in namespace ns.
func KubeHostname(name, ns string) string {
	return name + "." + ns + ".svc." + DomainSuffix
}

// Build indexes in into a new Snapshot with the given version.
func Build(version uint64, in Input) *Snapshot {
	s := &Snapshot{
		Version:        version,
		servicesByHost: map[string]*Service{},
		endpoints:      map[string][]*Endpoint{},
		podsByIP:       map[string]*corev1.Pod{},
		pods:           map[string]*corev1.Pod{},
		namespaces:     map[string]*corev1.Namespace{},
		secrets:        map[string]*corev1.Secret{},
		secretNS:       map[string]bool{},
		input:          in,
		// Copied, so a caller reusing its slices cannot change an older
		// snapshot: pushes compare snapshots to find what changed.
		VirtualServices:        slices.Clone(in.VirtualServices),
		DestinationRules:       slices.Clone(in.DestinationRules),
		Gateways:               slices.Clone(in.Gateways),
		Sidecars:               slices.Clone(in.Sidecars),
		WorkloadEntries:        slices.Clone(in.WorkloadEntries),
		ServiceEntries:         slices.Clone(in.ServiceEntries),
		PeerAuthentications:    slices.Clone(in.PeerAuthentications),
		AuthorizationPolicies:  slices.Clone(in.AuthorizationPolicies),
		RequestAuthentications: slices.Clone(in.RequestAuthentications),
		Telemetries:            slices.Clone(in.Telemetries),
		MetaRoutes:             slices.Clone(in.MetaRoutes),
		RootNamespace:          in.RootNamespace,
		Mesh:                   in.Mesh,
		JWKSFetch:              in.JWKSFetch,
		GatewayClasses:         slices.Clone(in.GatewayClasses),
		KubeGateways:           slices.Clone(in.KubeGateways),
		HTTPRoutes:             slices.Clone(in.HTTPRoutes),
		GRPCRoutes:             slices.Clone(in.GRPCRoutes),
		ReferenceGrants:        slices.Clone(in.ReferenceGrants),
		in: Input{
			Services:       slices.Clone(in.Services),
			Namespaces:     slices.Clone(in.Namespaces),
			Pods:           slices.Clone(in.Pods),
			EndpointSlices: slices.Clone(in.EndpointSlices),
		},
	}
	for _, ns := range in.SecretNamespaces {
		s.secretNS[ns] = true
	}
	for _, ns := range in.SecretNamespacesPending {
		if s.secretPending == nil {
			s.secretPending = map[string]bool{}
		}
		s.secretPending[ns] = true
	}
	for _, sec := range in.Secrets {
		if credential.Served(sec) {
			s.in.Secrets = append(s.in.Secrets, sec)
			s.secrets[sec.Namespace+"/"+sec.Name] = sec
		}
	}
	if s.RootNamespace == "" {
		s.RootNamespace = "mesh-system"
	}
	s.GatewayAPI = gatewayapi.Translate(gatewayapi.Input{
		Classes: in.GatewayClasses, Gateways: in.KubeGateways, HTTPRoutes: in.HTTPRoutes, GRPCRoutes: in.GRPCRoutes,
		Grants: in.ReferenceGrants, Namespaces: in.Namespaces, Services: in.Services, DomainSuffix: DomainSuffix,
		Secrets: s.in.Secrets, SecretsRead: func(ns string) error { return s.secretsRead(ns, "") },
	})
	s.Gateways = append(s.Gateways, s.GatewayAPI.Gateways...)
	s.VirtualServices = append(s.VirtualServices, s.GatewayAPI.VirtualServices...)
	for _, ns := range in.Namespaces {
		s.namespaces[ns.Name] = ns
	}
	for _, p := range in.Pods {
		s.pods[p.Namespace+"/"+p.Name] = p
		if p.Status.PodIP != "" && !p.Spec.HostNetwork && p.DeletionTimestamp == nil {
			s.podsByIP[p.Status.PodIP] = p
		}
	}
	kubeSvc := map[string]*Service{} // ns/name
	for _, ks := range in.Services {
		svc := fromKubeService(ks)
		kubeSvc[ks.Namespace+"/"+ks.Name] = svc
		s.add(svc)
	}
	for _, se := range in.ServiceEntries {
		for _, svc := range fromServiceEntry(se) {
			if s.servicesByHost[svc.Hostname] == nil {
				s.add(svc)
			}
		}
	}
	s.autoAllocate(in.ServiceEntries)
	if def := in.Mesh.GetDefaultServiceExportTo(); len(def) > 0 {
		for _, svc := range s.Services {
			svc.ExportTo = hostmatch.ExportToOr(svc.ExportTo, def)
		}
	}
	sort.Slice(s.Services, func(i, j int) bool { return s.Services[i].Hostname < s.Services[j].Hostname })
	s.selectorIndex = map[string]map[string][]*Service{}
	for _, svc := range s.Services {
		if len(svc.Selector) == 0 || svc.MeshExternal {
			continue
		}
		first := ""
		for k := range svc.Selector {
			if first == "" || k < first {
				first = k
			}
		}
		idx := s.selectorIndex[svc.Namespace]
		if idx == nil {
			idx = map[string][]*Service{}
			s.selectorIndex[svc.Namespace] = idx
		}
		key := first + "=" + svc.Selector[first]
		idx[key] = append(idx[key], svc)
	}

	for _, es := range in.EndpointSlices {
		svc := kubeSvc[es.Namespace+"/"+es.Labels[discoveryv1.LabelServiceName]]
		if svc == nil {
			continue
		}
		s.endpoints[svc.Hostname] = append(s.endpoints[svc.Hostname], s.fromSlice(svc, es)...)
	}
	for _, se := range in.ServiceEntries {
		s.addServiceEntryEndpoints(se, in.WorkloadEntries)
	}
	s.addWorkloadEntryEndpoints(in.WorkloadEntries)
	for host, eps := range s.endpoints {
		sort.Slice(eps, func(i, j int) bool {
			if eps[i].ServicePort != eps[j].ServicePort {
				return eps[i].ServicePort < eps[j].ServicePort
			}
			return eps[i].Address < eps[j].Address
		})
		s.endpoints[host] = eps
	}
	s.gatewaySecret = s.gatewaySecretNamespaces()
	return s
}

func (s *Snapshot) add(svc *Service) {
	s.Services = append(s.Services, svc)
	s.servicesByHost[svc.Hostname] = svc
}

func fromKubeService(ks *corev1.Service) *Service {
	svc := &Service{
		Hostname:  KubeHostname(ks.Name, ks.Namespace),
		Name:      ks.Name,
		Namespace: ks.Namespace,
		Selector:  ks.Spec.Selector,
	}
	switch {
	case ks.Spec.Type == corev1.ServiceTypeExternalName:
		svc.Resolution = ResolutionDNS
		svc.MeshExternal = true
	case ks.Spec.ClusterIP == corev1.ClusterIPNone:
		svc.Resolution = ResolutionPassthrough
	default:
		svc.Address = ks.Spec.ClusterIP
	}
	if v := ks.Annotations["networking.istio.io/exportTo"]; v != "" {
		for _, e := range strings.Split(v, ",") {
			svc.ExportTo = append(svc.ExportTo, strings.TrimSpace(e))
		}
	}
	for _, p := range ks.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue // UDP/SCTP are not proxied
		}
		app := ""
		if p.AppProtocol != nil {
			app = *p.AppProtocol
		}
		port := Port{Name: p.Name, Port: uint32(p.Port), Protocol: ParseProtocol(uint32(p.Port), app, p.Name)}
		if p.TargetPort.IntVal > 0 {
			port.TargetPort = uint32(p.TargetPort.IntVal)
		}
		svc.Ports = append(svc.Ports, port)
	}
	return svc
}

func (s *Snapshot) fromSlice(svc *Service, es *discoveryv1.EndpointSlice) []*Endpoint {
	var out []*Endpoint
	for _, sp := range es.Ports {
		if sp.Port == nil {
			continue
		}
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		var svcPort *Port
		for i := range svc.Ports {
			if svc.Ports[i].Name == name {
				svcPort = &svc.Ports[i]
			}
		}
		if svcPort == nil {
			continue
		}
		for _, ep := range es.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			for _, addr := range ep.Addresses {
				e := &Endpoint{
					Address:     addr,
					Port:        uint32(*sp.Port),
					ServicePort: svcPort.Port,
					Namespace:   es.Namespace,
					Ready:       ready,
				}
				if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
					e.Workload = ep.TargetRef.Name
					if pod := s.pods[es.Namespace+"/"+ep.TargetRef.Name]; pod != nil {
						e.Labels = pod.Labels
						e.ServiceAccount = pod.Spec.ServiceAccountName
						if inFallback(pod) {
							e.Labels, e.Ready = fallbackEndpoint(pod, ep.Conditions)
						}
					}
				}
				if e.ServiceAccount == "" {
					e.ServiceAccount = "default"
				}
				out = append(out, e)
			}
		}
	}
	return out
}
