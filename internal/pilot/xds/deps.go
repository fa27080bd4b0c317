package xds

import (
	"maps"
	"reflect"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// configDelta is what a config change can reach, worked out by comparing
// two snapshots: a group is rebuilt only when it sees one of hosts, belongs
// to one of namespaces, or is a gateway. Kinds pilot cannot bound this way
// make the change full (configDelta returns ok false).
type configDelta struct {
	kinds      []string        // changed kinds, for logs
	hosts      map[string]bool // services whose clusters, endpoints or routes may differ
	namespaces map[string]bool // namespaces whose proxies' inbound side or scope may differ
	// services are the new versions of added or changed services: a scope
	// that would admit one is reached even if it did not see it before.
	services []*model.Service
	// endpointHosts are the services whose endpoints differ (carried-over
	// groups rebuild only their EDS for these).
	endpointHosts map[string]bool
	// workloads are "namespace/address" of changed WorkloadEntries: a proxy
	// without a pod takes its labels, account and ports from the entry at
	// its IP, so such a proxy is regenerated.
	workloads map[string]bool
}

// sameObject reports whether a and b are the same version of one object:
// informer caches hand out the same pointer until the object changes.
func sameObject(a, b metav1.Object) bool {
	if a == b {
		return true
	}
	return a.GetUID() != "" && a.GetUID() == b.GetUID() &&
		a.GetResourceVersion() != "" && a.GetResourceVersion() == b.GetResourceVersion()
}

// changedObjects returns the old and new versions of every object of one
// kind that was added, removed or updated between two lists.
func changedObjects[T metav1.Object](before, after []T) []T {
	key := func(o T) string { return o.GetNamespace() + "/" + o.GetName() }
	prev := make(map[string]T, len(before))
	for _, o := range before {
		prev[key(o)] = o
	}
	var out []T
	for _, o := range after {
		k := key(o)
		p, ok := prev[k]
		delete(prev, k)
		if ok && sameObject(p, o) {
			continue
		}
		if ok {
			out = append(out, p)
		}
		out = append(out, o)
	}
	for _, p := range prev {
		out = append(out, p)
	}
	return out
}

// diffConfig compares the config of two snapshots. ok is false when the
// change touches something not tracked here, so every group is rebuilt:
// policy or Sidecars in the root namespace (they reach every namespace),
// and rules that start or stop matching on client labels (group keys change).
//
// ServiceEntries reach the generator only as the services and endpoints
// the snapshot makes of them, and WorkloadEntries as endpoints and as the
// workload behind a pod-less proxy, so both are tracked through those.
// RequestAuthentications reach their namespace's proxies like other policy
// (until mesh-proxy verifies tokens, they make it refuse requests carrying one).
func diffConfig(old *PushContext, next *model.Snapshot, nextPC *PushContext) (d configDelta, ok bool) {
	a, b := old.Snap, next
	d = configDelta{hosts: map[string]bool{}, namespaces: map[string]bool{}, endpointHosts: map[string]bool{}, workloads: map[string]bool{}}
	if a.RootNamespace != b.RootNamespace || old.sourceLabels != nextPC.sourceLabels {
		return d, false
	}
	for _, kind := range []struct {
		name    string
		changed bool
	}{
		{"ServiceEntry", len(changedObjects(a.ServiceEntries, b.ServiceEntries)) > 0},
		{"WorkloadEntry", len(changedObjects(a.WorkloadEntries, b.WorkloadEntries)) > 0},
	} {
		if kind.changed {
			d.kinds = append(d.kinds, kind.name)
		}
	}
	for _, we := range changedObjects(a.WorkloadEntries, b.WorkloadEntries) {
		d.workloads[we.Namespace+"/"+we.Spec.Address] = true
	}
	// A Service (or ServiceEntry host) reaches the scopes that see it
	// (before or after), the routes of VirtualServices sending traffic to
	// it (ports come from it) and, when it can select workloads, the
	// inbound side of its namespace's proxies.
	destHosts := map[string]bool{}
	for _, svc := range changedServices(a, b) {
		d.hosts[svc.Hostname] = true
		if canSelectProxies(svc) {
			d.namespaces[svc.Namespace] = true
		}
		destHosts[svc.Hostname] = true
		if b.ServiceByHost(svc.Hostname) == svc {
			d.services = append(d.services, svc)
		}
	}
	if len(destHosts) > 0 {
		d.kinds = append(d.kinds, "Service")
	}
	for _, svc := range b.Services {
		if reflect.DeepEqual(a.Endpoints(svc.Hostname), b.Endpoints(svc.Hostname)) {
			continue
		}
		d.endpointHosts[svc.Hostname] = true
		if svc.Resolution != model.ResolutionEndpoints {
			// DNS clusters carry their endpoints inline: CDS, not EDS.
			d.hosts[svc.Hostname] = true
		}
	}

	// A namespace-wide or workload policy reaches the proxies of its namespace only.
	for _, kind := range []struct {
		name string
		nss  []string
	}{
		{"PeerAuthentication", namespacesOf(changedObjects(a.PeerAuthentications, b.PeerAuthentications))},
		{"AuthorizationPolicy", namespacesOf(changedObjects(a.AuthorizationPolicies, b.AuthorizationPolicies))},
		{"Sidecar", namespacesOf(changedObjects(a.Sidecars, b.Sidecars))},
		{"RequestAuthentication", namespacesOf(changedObjects(a.RequestAuthentications, b.RequestAuthentications))},
	} {
		for _, ns := range kind.nss {
			if ns == b.RootNamespace {
				return d, false
			}
			d.namespaces[ns] = true
		}
		if len(kind.nss) > 0 {
			d.kinds = append(d.kinds, kind.name)
		}
	}

	// A VirtualService shapes the routes and TCP listeners of its hosts.
	vss := changedObjects(a.VirtualServices, b.VirtualServices)
	for _, vs := range vss {
		for _, h := range vs.Spec.Hosts {
			for _, svc := range matchServices(b, resolveHost(h, vs.Namespace)) {
				d.hosts[svc.Hostname] = true
			}
		}
	}
	if len(vss) > 0 {
		d.kinds = append(d.kinds, "VirtualService")
	}
	// A DestinationRule shapes its host's clusters and endpoints (subsets),
	// and the routes of every VirtualService sending traffic there (hash
	// policies), so those VirtualServices' hosts are reached too.
	drs := changedObjects(a.DestinationRules, b.DestinationRules)
	if len(drs) > 0 {
		d.kinds = append(d.kinds, "DestinationRule")
		for _, dr := range drs {
			for _, svc := range matchServices(b, resolveHost(dr.Spec.Host, dr.Namespace)) {
				destHosts[svc.Hostname] = true
				d.hosts[svc.Hostname] = true
			}
		}
	}
	if len(destHosts) > 0 {
		for _, vs := range append(append([]*networkingv1.VirtualService(nil), a.VirtualServices...), b.VirtualServices...) {
			if !routesToAny(vs, destHosts) {
				continue
			}
			for _, h := range vs.Spec.Hosts {
				for _, snap := range []*model.Snapshot{a, b} {
					for _, svc := range matchServices(snap, resolveHost(h, vs.Namespace)) {
						d.hosts[svc.Hostname] = true
					}
				}
			}
		}
	}
	// Gateways only shape routers, which every config change rebuilds.
	if len(changedObjects(a.Gateways, b.Gateways)) > 0 {
		d.kinds = append(d.kinds, "Gateway")
	}
	sort.Strings(d.kinds)
	return d, true
}

// routesToAny reports whether vs sends (or mirrors) traffic to one of hosts.
func routesToAny(vs *networkingv1.VirtualService, hosts map[string]bool) bool {
	var dests []*networkingapi.Destination
	for _, r := range vs.Spec.Http {
		for _, rd := range r.Route {
			dests = append(dests, rd.Destination)
		}
		dests = append(dests, r.Mirror)
	}
	for _, r := range vs.Spec.Tcp {
		for _, rd := range r.Route {
			dests = append(dests, rd.Destination)
		}
	}
	for _, r := range vs.Spec.Tls {
		for _, rd := range r.Route {
			dests = append(dests, rd.Destination)
		}
	}
	for _, dst := range dests {
		if dst != nil && hosts[resolveHost(dst.Host, vs.Namespace)] {
			return true
		}
	}
	return false
}

// canSelectProxies reports whether svc may give its namespace's proxies
// inbound ports: a Kubernetes Service always may (as before), a
// ServiceEntry host only through a workloadSelector.
func canSelectProxies(svc *model.Service) bool {
	return svc.Hostname == model.KubeHostname(svc.Name, svc.Namespace) || len(svc.Selector) > 0
}

func namespacesOf[T metav1.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetNamespace())
	}
	return out
}

// changedServices returns the old and new versions of every service added,
// removed or changed between two snapshots.
func changedServices(a, b *model.Snapshot) []*model.Service {
	var out []*model.Service
	for _, s := range b.Services {
		if o := a.ServiceByHost(s.Hostname); o == nil || !reflect.DeepEqual(o, s) {
			if o != nil {
				out = append(out, o)
			}
			out = append(out, s)
		}
	}
	for _, o := range a.Services {
		if b.ServiceByHost(o.Hostname) == nil {
			out = append(out, o)
		}
	}
	return out
}

// dirty reports whether a group's config may differ under d.
func (d *configDelta) dirty(g *Resources) bool {
	if g.router || d.namespaces[g.groupNS] {
		return true
	}
	return g.scope == nil || d.scopeDirty(g.scope)
}

func (d *configDelta) scopeDirty(sc *scope) bool {
	if d.namespaces[sc.ns] {
		return true
	}
	for h := range d.hosts {
		if sc.hosts[h] {
			return true
		}
	}
	for _, svc := range d.services {
		if sc.admits(svc) {
			return true
		}
	}
	return false
}

// carry gives pc, the context for the snapshot after a tracked change,
// everything of old that d cannot reach: memoised clusters, endpoints,
// virtual hosts, scopes and route tables of untouched hosts and scopes,
// and the groups in keep (untouched ones as they are, those using a host
// whose endpoints changed to have their EDS rebuilt).
func (pc *PushContext) carry(old *PushContext, d *configDelta, keep map[string]*Resources) {
	old.mu.Lock()
	defer old.mu.Unlock()
	for h, l := range old.clusters {
		if !d.hosts[h] && !d.endpointHosts[h] {
			pc.clusters[h] = l
		}
	}
	for h, l := range old.endpoints {
		if !d.hosts[h] && !d.endpointHosts[h] {
			pc.endpoints[h] = l
		}
	}
	for k, l := range old.vhosts {
		if h, _, _ := strings.Cut(k, "|"); !d.hosts[h] {
			pc.vhosts[k] = l
		}
	}
	for k, l := range old.scopes {
		if l.done.Load() && !d.scopeDirty(l.v) {
			pc.scopes[k] = l
		}
	}
	for k, l := range old.routes {
		if sk, _, _ := strings.Cut(k, "|"); pc.scopes[sk] != nil {
			pc.routes[k] = l
		}
	}
	pc.prevGroups = map[string]*lazy[*Resources]{}
	pc.changedHosts = maps.Clone(d.endpointHosts)
	for k, g := range keep {
		l := &lazy[*Resources]{v: g}
		l.once.Do(func() {})
		l.done.Store(true)
		if g.usesAny(d.endpointHosts) {
			pc.prevGroups[k] = l
		} else {
			pc.groups[k] = l
		}
	}
}

func (r *Resources) usesAny(hosts map[string]bool) bool {
	for h := range hosts {
		if r.EndpointHosts[h] {
			return true
		}
	}
	return false
}
