package xds

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/nds"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// Type URLs in the order pilot reports them. The name table (NDS) goes
// last: only proxies that capture DNS subscribe to it.
var TypeURLs = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.SecretType, nds.TypeURL}

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
	case nds.TypeURL:
		return "NDS"
	}
	return typeURL
}

// SecretSource issues the SDS secrets of a workload identity.
type SecretSource interface {
	WorkloadSecrets(namespace, serviceAccount string) ([]*tlsv3.Secret, error)
}

// Resources is everything pilot sends one proxy, by type URL. Proxies whose
// config comes out the same (same scope, same inbound side) share one
// Resources' items, versions and generations; only the identity and the
// secrets are per proxy.
type Resources struct {
	// byType holds the resources while the group is built; finish moves
	// them into gens, which is what is served and read afterwards. The
	// first shared[type] resources of a type are the outbound side that
	// groups of one scope and namespace have alike (see typeGen).
	byType   map[string][]*item
	shared   map[string]int
	versions map[string]string
	gens     view
	invalid  error // ValidateAll failures, joined
	// For endpoint-only pushes: the services whose endpoints r carries, in
	// order, and the validation failures of everything but EDS.
	edsServices   []*model.Service
	invalidNonEDS error
	// Clusters the proxy uses whose endpoints come over EDS, by service host:
	// an endpoint change of one of these hosts concerns this proxy.
	EndpointHosts map[string]bool
	// Workload identity, for secrets.
	Namespace, ServiceAccount string

	// What a config change is checked against (see configDelta): the
	// group's shared config, key, namespace, scope and role.
	base    *Resources
	key     string
	groupNS string
	scope   *scope // nil for routers
	router  bool
	// credentials are the SDS secrets of the Gateway servers' credentialNames
	// (kubernetes://NAME and NAME-cacert), sent only to routers whose stream
	// is mTLS-authenticated (SecretSource given).
	credentials []*item
}

// items returns the resources of typeURL in send order.
func (r *Resources) items(typeURL string) []*item {
	if r.byType != nil {
		return r.byType[typeURL]
	}
	if g := r.gens[typeIndexOf(typeURL)]; g != nil {
		return g.items()
	}
	return nil
}

// Items returns the resources of typeURL.
func (r *Resources) Items(typeURL string) []types.Resource {
	its := r.items(typeURL)
	out := make([]types.Resource, len(its))
	for i, it := range its {
		out[i] = it.msg
	}
	return out
}

// Names returns the resource names of typeURL, sorted.
func (r *Resources) Names(typeURL string) []string {
	var out []string
	for _, it := range r.items(typeURL) {
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
	return itemsVersion(r.items(typeURL))
}

func itemsVersion(its []*item) string {
	h := fnv.New64a()
	var buf [8]byte
	for _, it := range its {
		_, _ = h.Write([]byte(it.name))
		for i := 0; i < 8; i++ {
			buf[i] = byte(it.hash >> (8 * i))
		}
		_, _ = h.Write(buf[:])
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

func (r *Resources) add(typeURL string, its ...*item) {
	r.byType[typeURL] = append(r.byType[typeURL], its...)
}

// addShared adds resources of the shared outbound side; for each type they
// come before any added with add.
func (r *Resources) addShared(typeURL string, its ...*item) {
	if len(r.byType[typeURL]) != r.shared[typeURL] {
		panic("xds: shared resources of " + typeURL + " added after the group's own") // a generator bug
	}
	r.add(typeURL, its...)
	if r.shared == nil {
		r.shared = map[string]int{}
	}
	r.shared[typeURL] = len(r.byType[typeURL])
}

// finish computes the type versions, the served generations and the
// validation verdict, once for all proxies sharing r. Items are not sorted:
// generation adds them in a deterministic order (services sorted by host,
// ports ascending), which is all a stable version needs.
func (r *Resources) finish(pc *PushContext) {
	r.versions = make(map[string]string, len(TypeURLs))
	var errs, edsErrs []error
	for i, t := range TypeURLs {
		its := r.byType[t]
		r.gens[i] = pc.sharedGen(t, its, r.shared[t])
		r.versions[t] = r.gens[i].version // itemsVersion(its), hashed once in sharedGen
		for _, it := range its {
			if it.invalid == nil {
				continue
			}
			err := fmt.Errorf("%s %s: %w", ShortType(t), it.name, it.invalid)
			if t == resourcev3.EndpointType {
				edsErrs = append(edsErrs, err)
			} else {
				errs = append(errs, err)
			}
		}
	}
	r.invalidNonEDS = errors.Join(errs...)
	r.invalid = errors.Join(append(errs, edsErrs...)...)
	r.byType, r.shared = nil, nil
}

// sharedGen is the generation of its, one per content in a push and kept
// across pushes while the content is unchanged, so groups (and successive
// generations of a group) with the same config share it and its diffs. Its
// first k resources, the outbound side, are a layer shared by content too.
func (pc *PushContext) sharedGen(typeURL string, its []*item, k int) *typeGen {
	v := itemsVersion(its)
	key := typeURL + "|" + v + "|" + strconv.Itoa(len(its))
	return memo(&pc.mu, pc.sharedGens, key, func() *typeGen {
		pc.mu.Lock()
		l := pc.prevSharedGens[key]
		pc.mu.Unlock()
		if l != nil && l.done.Load() {
			return l.v
		}
		if k <= 0 || k >= len(its) {
			return newTypeGen(typeURL, v, its)
		}
		return newLayeredGen(typeURL, v, pc.sharedGen(typeURL, its[:k], 0), its[k:])
	})
}

// Generate builds the resources for one proxy. secrets may be nil, in which
// case no SDS resources are generated. Proxies with the same generator
// inputs share what it returns, built once per push.
func (pc *PushContext) Generate(p *model.Proxy, secrets SecretSource) (*Resources, error) {
	return pc.generate(p, secrets, nil)
}

// generate is Generate with the proxy's group key memo (keyFor).
func (pc *PushContext) generate(p *model.Proxy, secrets SecretSource, km *atomic.Pointer[keyMemo]) (*Resources, error) {
	w, pod := pc.workloadFor(p)
	key, err := pc.keyFor(p, w, pod, km)
	if err != nil {
		return nil, err
	}
	base := memo(&pc.mu, pc.groups, key, func() *Resources {
		if r := pc.reuseGroup(key); r != nil {
			return r
		}
		pc.built.Add(1)
		r := &Resources{byType: map[string][]*item{}, EndpointHosts: map[string]bool{}, key: key, groupNS: w.namespace}
		if w.proxyType == model.Router {
			r.router = true
			pc.gateway(r, w)
			observeListeners(r, pc.observe(w, telemetry.Gateway))
		} else {
			r.scope = pc.scopeOf(w.namespace, w.labels, w.meta.DNSAutoAllocate)
			pc.sidecar(r, w)
		}
		r.finish(pc)
		return r
	})
	r := *base
	r.base = base
	r.Namespace, r.ServiceAccount = w.namespace, w.serviceAccount
	if secrets == nil {
		return &r, nil
	}
	ss, err := secrets.WorkloadSecrets(w.namespace, w.serviceAccount)
	if err != nil {
		return nil, fmt.Errorf("secrets for %s/%s: %w", w.namespace, w.serviceAccount, err)
	}
	its := make([]*item, 0, len(ss)+len(base.credentials))
	var errs []error
	for _, s := range ss {
		it := newItem(s.Name, s)
		if it.invalid != nil {
			errs = append(errs, fmt.Errorf("SDS %s: %w", it.name, it.invalid))
		}
		its = append(its, it)
	}
	for _, it := range base.credentials {
		if it.invalid != nil {
			errs = append(errs, fmt.Errorf("SDS %s: %w", it.name, it.invalid))
		}
		its = append(its, it)
	}
	r.versions = maps.Clone(base.versions)
	r.versions[resourcev3.SecretType] = itemsVersion(its)
	r.gens[typeIndexOf(resourcev3.SecretType)] = newTypeGen(resourcev3.SecretType, r.versions[resourcev3.SecretType], its)
	r.invalid = errors.Join(append([]error{base.invalid}, errs...)...)
	return &r, nil
}

// reuseGroup carries a group over an endpoint-only change: unchanged when
// it uses none of the changed hosts, else with only its EDS resources
// rebuilt. nil when there is nothing to carry over.
func (pc *PushContext) reuseGroup(key string) *Resources {
	pc.mu.Lock()
	l := pc.prevGroups[key]
	pc.mu.Unlock()
	if l == nil || !l.done.Load() || l.v == nil {
		return nil
	}
	old := l.v
	touched := false
	for h := range pc.changedHosts {
		if old.EndpointHosts[h] {
			touched = true
			break
		}
	}
	if !touched {
		return old
	}
	r := *old
	i := typeIndexOf(resourcev3.EndpointType)
	// Groups that were sent the same load assignments from one namespace
	// are sent the same new ones: rebuilt once for all of them.
	eds := memo(&pc.mu, pc.edsRebuilt, strconv.FormatUint(old.gens[i].id, 36)+"|"+old.groupNS, func() *edsRebuild {
		var its []*item
		for _, svc := range old.edsServices {
			its = append(its, pc.outboundEndpoints(svc, old.groupNS)...)
		}
		e := &edsRebuild{gen: pc.sharedGen(resourcev3.EndpointType, its, 0)}
		for _, it := range its {
			if it.invalid != nil {
				e.errs = append(e.errs, fmt.Errorf("EDS %s: %w", it.name, it.invalid))
			}
		}
		return e
	})
	r.versions = maps.Clone(old.versions)
	r.versions[resourcev3.EndpointType] = eds.gen.version
	r.gens[i] = eds.gen
	r.invalid = errors.Join(append([]error{old.invalidNonEDS}, eds.errs...)...)
	return &r
}

// edsRebuild is a group's EDS after an endpoint-only change.
type edsRebuild struct {
	gen  *typeGen
	errs []error
}

// scopeResources are the outbound resources shared by every proxy of a scope.
type scopeResources struct {
	once      sync.Once
	listeners []*item
	httpPorts []uint32
}

// scopeShared returns the outbound resources of a scope's proxies with
// labels lbls: the scope's one set, or, when tls or tcp rules match on
// source labels, the set of the proxies with those labels.
func (pc *PushContext) scopeShared(sc *scope, lbls map[string]string) *scopeResources {
	sr := &sc.shared
	if pc.l4SourceLabels {
		k := labelKey(lbls)
		sc.labelledMu.Lock()
		if sc.labelled == nil {
			sc.labelled = map[string]*scopeResources{}
		}
		if sc.labelled[k] == nil {
			sc.labelled[k] = &scopeResources{}
		}
		sr = sc.labelled[k]
		sc.labelledMu.Unlock()
	}
	sr.once.Do(func() {
		sr.listeners = pc.outboundListeners(sc, lbls)
		ports := map[uint32]bool{}
		for _, svc := range sc.services {
			for _, p := range svc.Ports {
				if p.Protocol.MaybeHTTP() {
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
	sc := pc.scopeOf(w.namespace, w.labels, w.meta.DNSAutoAllocate)
	side := pc.outboundSide(sc, w.namespace)
	r.addShared(resourcev3.ClusterType, side.clusters...)
	r.addShared(resourcev3.EndpointType, side.endpoints...)
	r.EndpointHosts, r.edsServices = side.hosts, side.services
	ports := inboundPorts(w.services, w.namedPorts)
	for _, p := range ports {
		r.add(resourcev3.ClusterType, newItem(InboundClusterName(p.port), withServices(inboundCluster(p), p.services)))
	}
	shared := pc.scopeShared(sc, w.labels)
	out, in := pc.observe(w, telemetry.Outbound), pc.observe(w, telemetry.Inbound)
	r.addShared(resourcev3.ListenerType, pc.scopeListeners(sc, w.labels, out)...)
	virtual := memo(&pc.mu, pc.virtuals, pc.listenerKey(w), func() []*item {
		vo, vi := virtualOutbound(sc), pc.virtualInbound(w, ports)
		addObserve(vo, out)
		addObserve(vi, in)
		return []*item{newItem(VirtualOutbound, vo), newItem(VirtualInbound, vi)}
	})
	r.add(resourcev3.ListenerType, virtual...)
	for _, port := range shared.httpPorts {
		r.addShared(resourcev3.RouteType, pc.outboundRouteConfig(sc, port, w.namespace, w.labels))
	}
	if w.meta.DNSCapture {
		r.add(nds.TypeURL, pc.nameTable(sc))
	}
}

var fixedClusterItems = sync.OnceValue(fixedClusters)

// outboundSide is what every sidecar of one scope and namespace is sent for
// its outbound clusters and load assignments, and the services that have
// load assignments (by host too); built once and shared read-only.
type outboundSide struct {
	clusters, endpoints []*item
	hosts               map[string]bool
	services            []*model.Service
}

func (pc *PushContext) outboundSide(sc *scope, ns string) *outboundSide {
	return memo(&pc.mu, pc.outSides, sc.key+"|"+ns, func() *outboundSide {
		side := &outboundSide{clusters: append([]*item(nil), fixedClusterItems()...), hosts: map[string]bool{}}
		for _, svc := range sc.services {
			side.clusters = append(side.clusters, pc.outboundClusters(svc, ns)...)
			if eps := pc.outboundEndpoints(svc, ns); len(eps) > 0 {
				side.endpoints = append(side.endpoints, eps...)
				side.hosts[svc.Hostname] = true
				side.services = append(side.services, svc)
			}
		}
		return side
	})
}
