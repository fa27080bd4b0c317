package xds

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
)

// Type URLs in the order pilot reports them.
var TypeURLs = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.SecretType}

// ShortType is the xDS short name of a type URL ("CDS", ...).
func ShortType(typeURL string) string {
	switch typeURL {
	case resourcev3.ClusterType:
		return "CDS"
	case resourcev3.EndpointType:
		return "EDS"
	case resourcev3.ListenerType:
		return "LDS"
	case resourcev3.RouteType:
		return "RDS"
	case resourcev3.SecretType:
		return "SDS"
	case resourcev3.ExtensionConfigType:
		return "ECDS"
	}
	return typeURL
}

// SecretSource issues the SDS secrets of a workload identity.
type SecretSource interface {
	WorkloadSecrets(namespace, serviceAccount string) ([]*tlsv3.Secret, error)
}

// Resources is everything pilot sends one proxy, by type URL.
type Resources struct {
	byType   map[string][]*item
	versions map[string]string
	// Clusters the proxy uses whose endpoints come over EDS, by service host:
	// an endpoint change of one of these hosts concerns this proxy.
	EndpointHosts map[string]bool
	// Workload identity, for secrets.
	Namespace, ServiceAccount string
}

// Items returns the resources of typeURL.
func (r *Resources) Items(typeURL string) []types.Resource {
	its := r.byType[typeURL]
	out := make([]types.Resource, len(its))
	for i, it := range its {
		out[i] = it.msg
	}
	return out
}

// Names returns the resource names of typeURL, sorted.
func (r *Resources) Names(typeURL string) []string {
	var out []string
	for _, it := range r.byType[typeURL] {
		out = append(out, it.name)
	}
	sort.Strings(out)
	return out
}

// Version is a content hash of the resources of typeURL: equal versions mean
// equal content, so unchanged types are not pushed again.
func (r *Resources) Version(typeURL string) string {
	if v, ok := r.versions[typeURL]; ok {
		return v
	}
	its := r.byType[typeURL]
	h := fnv.New64a()
	var buf [8]byte
	for _, it := range its {
		_, _ = h.Write([]byte(it.name))
		for i := 0; i < 8; i++ {
			buf[i] = byte(it.hash >> (8 * i))
		}
		_, _ = h.Write(buf[:])
	}
	v := strconv.FormatUint(h.Sum64(), 36)
	if r.versions == nil {
		r.versions = map[string]string{}
	}
	r.versions[typeURL] = v
	return v
}

func (r *Resources) add(typeURL string, its ...*item) {
	r.byType[typeURL] = append(r.byType[typeURL], its...)
}

// finish computes the type versions. Items are not sorted: generation adds
// them in a deterministic order (services sorted by host, ports ascending),
// which is all a stable version needs, and sorting 2,000 names per proxy per
// push is a third of a push's cost.
func (r *Resources) finish() {
	for t := range r.byType {
		r.Version(t)
	}
}

// workload is what pilot knows of the workload behind a proxy.
type workload struct {
	namespace      string
	name           string
	labels         map[string]string
	serviceAccount string
	namedPorts     map[string]uint32
	services       []*model.Service
}

func (pc *PushContext) workloadFor(p *model.Proxy) *workload {
	w := &workload{namespace: p.Namespace, name: p.PodName, serviceAccount: "default", namedPorts: map[string]uint32{}}
	pod := pc.Snap.PodByIP(p.IP)
	if pod == nil || pod.Namespace != p.Namespace {
		pod = pc.Snap.Pod(p.Namespace, p.PodName)
	}
	if pod != nil {
		w.labels = pod.Labels
		if pod.Spec.ServiceAccountName != "" {
			w.serviceAccount = pod.Spec.ServiceAccountName
		}
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name != "" {
					w.namedPorts[cp.Name] = uint32(cp.ContainerPort)
				}
			}
		}
	} else {
		for _, we := range pc.Snap.WorkloadEntries {
			if we.Namespace == p.Namespace && we.Spec.Address == p.IP {
				w.labels = we.Spec.Labels
				if we.Spec.ServiceAccount != "" {
					w.serviceAccount = we.Spec.ServiceAccount
				}
				for n, port := range we.Spec.Ports {
					w.namedPorts[n] = port
				}
				break
			}
		}
	}
	w.services = pc.Snap.ServicesFor(w.namespace, w.labels)
	return w
}

// Generate builds the resources for one proxy. secrets may be nil, in which
// case no SDS resources are generated.
func (pc *PushContext) Generate(p *model.Proxy, secrets SecretSource) (*Resources, error) {
	r := &Resources{byType: map[string][]*item{}, EndpointHosts: map[string]bool{}}
	w := pc.workloadFor(p)
	r.Namespace, r.ServiceAccount = w.namespace, w.serviceAccount
	switch p.Type {
	case model.SidecarProxy:
		pc.sidecar(r, w)
	case model.Router:
		pc.gateway(r, w)
	default:
		return nil, fmt.Errorf("proxy %s: unknown type %q", p.ID, p.Type)
	}
	if secrets != nil {
		ss, err := secrets.WorkloadSecrets(w.namespace, w.serviceAccount)
		if err != nil {
			return nil, fmt.Errorf("secrets for %s/%s: %w", w.namespace, w.serviceAccount, err)
		}
		for _, s := range ss {
			r.add(resourcev3.SecretType, newItem(s.Name, s))
		}
	}
	r.finish()
	return r, nil
}

// scopeResources are the outbound resources shared by every proxy of a scope.
type scopeResources struct {
	once      sync.Once
	listeners []*item
	httpPorts []uint32
}

func (pc *PushContext) scopeShared(sc *scope) *scopeResources {
	sr := &sc.shared
	sr.once.Do(func() {
		sr.listeners = pc.outboundListeners(sc)
		ports := map[uint32]bool{}
		for _, svc := range sc.services {
			for _, p := range svc.Ports {
				if p.Protocol.IsHTTP() {
					ports[p.Port] = true
				}
			}
		}
		for p := range ports {
			sr.httpPorts = append(sr.httpPorts, p)
		}
		sort.Slice(sr.httpPorts, func(i, j int) bool { return sr.httpPorts[i] < sr.httpPorts[j] })
	})
	return sr
}

func (pc *PushContext) sidecar(r *Resources, w *workload) {
	sc := pc.scopeFor(w.namespace, w.labels)
	r.add(resourcev3.ClusterType, fixedClusterItems()...)
	for _, svc := range sc.services {
		r.add(resourcev3.ClusterType, pc.outboundClusters(svc)...)
		if eps := pc.outboundEndpoints(svc); len(eps) > 0 {
			r.add(resourcev3.EndpointType, eps...)
			r.EndpointHosts[svc.Hostname] = true
		}
	}
	ports := inboundPorts(w.services, w.namedPorts)
	for _, p := range ports {
		r.add(resourcev3.ClusterType, newItem(InboundClusterName(p.port), staticCluster(InboundClusterName(p.port), "127.0.0.1", p.port)))
	}
	shared := pc.scopeShared(sc)
	r.add(resourcev3.ListenerType, shared.listeners...)
	r.add(resourcev3.ListenerType, newItem(VirtualOutbound, virtualOutbound()), newItem(VirtualInbound, pc.virtualInbound(w, ports)))
	for _, port := range shared.httpPorts {
		r.add(resourcev3.RouteType, pc.outboundRouteConfig(sc, port, w.namespace, w.labels))
	}
}

var fixedClusterItems = sync.OnceValue(fixedClusters)
