package model

import (
	"reflect"

	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/hostmatch"
)

// Delta is what a config change can reach, worked out by comparing two
// snapshots: a proxy group is rebuilt only when it sees one of Hosts,
// belongs to one of Namespaces, or is a gateway.
type Delta struct {
	Kinds      []string        // changed kinds, for logs
	Hosts      map[string]bool // services whose clusters, endpoints or routes may differ
	Namespaces map[string]bool // namespaces whose proxies' inbound side or scope may differ
	// Services are the new versions of added or changed services: a scope
	// that would admit one is reached even if it did not see it before.
	Services []*Service
	// EndpointHosts are the services whose endpoints differ (carried-over
	// groups rebuild only their EDS for these).
	EndpointHosts map[string]bool
	// Workloads are "namespace/address" of changed WorkloadEntries: a proxy
	// without a pod takes its labels, account and ports from the entry at
	// its IP, so such a proxy is regenerated.
	Workloads map[string]bool
	// destHosts are services whose traffic policy changed: the routes of
	// every VirtualService sending traffic there are reached too.
	destHosts map[string]bool
}

// Diff compares two snapshots kind by kind through the table. ok is false
// when the change must reach every proxy: a changed kind without a reach
// function, a reach function that cannot bound it, or a new root namespace.
func Diff(a, b *Snapshot) (d Delta, ok bool) {
	d = Delta{Hosts: map[string]bool{}, Namespaces: map[string]bool{}, EndpointHosts: map[string]bool{}, Workloads: map[string]bool{}, destHosts: map[string]bool{}}
	if a.RootNamespace != b.RootNamespace || !proto.Equal(a.Mesh, b.Mesh) {
		return d, false
	}
	d.diffServices(a, b)
	for _, k := range Kinds {
		changed := ChangedObjects(k.Objects(a), k.Objects(b))
		if len(changed) == 0 {
			continue
		}
		d.Kinds = append(d.Kinds, k.GVK.Kind)
		if k.Reach == nil || !k.Reach(a, b, changed, &d) {
			return d, false
		}
	}
	if len(d.destHosts) > 0 {
		for _, vs := range append(append([]*networkingv1.VirtualService(nil), a.VirtualServices...), b.VirtualServices...) {
			if !routesToAny(vs, d.destHosts) {
				continue
			}
			for _, h := range vs.Spec.Hosts {
				for _, snap := range []*Snapshot{a, b} {
					for _, svc := range snap.MatchServices(hostmatch.Resolve(h, vs.Namespace)) {
						d.Hosts[svc.Hostname] = true
					}
				}
			}
		}
	}
	return d, true
}

// diffServices records the services (Kubernetes Services and ServiceEntry
// hosts) and endpoints that differ. A service reaches the scopes that see
// it (before or after), the routes of VirtualServices sending traffic to it
// (ports come from it) and, when it can select workloads, the inbound side
// of its namespace's proxies.
func (d *Delta) diffServices(a, b *Snapshot) {
	for _, svc := range changedServices(a, b) {
		d.Hosts[svc.Hostname] = true
		if canSelectProxies(svc) {
			d.Namespaces[svc.Namespace] = true
		}
		d.destHosts[svc.Hostname] = true
		if b.ServiceByHost(svc.Hostname) == svc {
			d.Services = append(d.Services, svc)
		}
	}
	for _, svc := range b.Services {
		if reflect.DeepEqual(a.Endpoints(svc.Hostname), b.Endpoints(svc.Hostname)) {
			continue
		}
		d.EndpointHosts[svc.Hostname] = true
		if svc.Resolution != ResolutionEndpoints {
			// DNS clusters carry their endpoints inline: CDS, not EDS.
			d.Hosts[svc.Hostname] = true
		}
	}
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

// ChangedObjects returns the old and new versions of every object of one
// kind that was added, removed or updated between two lists.
func ChangedObjects(before, after []metav1.Object) []metav1.Object {
	key := func(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }
	prev := make(map[string]metav1.Object, len(before))
	for _, o := range before {
		prev[key(o)] = o
	}
	var out []metav1.Object
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

// reachNone is the reach of a kind the generator reads nothing of.
func reachNone(_, _ *Snapshot, _ []metav1.Object, _ *Delta) bool { return true }

// reachThroughServices is the reach of kinds the generator sees only as the
// services and endpoints the snapshot makes of them (Services,
// ServiceEntries): diffServices compares those for every change.
func reachThroughServices(_, _ *Snapshot, _ []metav1.Object, _ *Delta) bool { return true }

// reachThroughEndpoints is the reach of Pods and EndpointSlices: the
// endpoints they make are compared by diffServices, and a proxy whose own
// pod changed is regenerated by the pusher.
func reachThroughEndpoints(_, _ *Snapshot, _ []metav1.Object, _ *Delta) bool { return true }

// reachRouters is the reach of Gateways: they shape only routers, which
// every config change rebuilds.
func reachRouters(_, _ *Snapshot, _ []metav1.Object, _ *Delta) bool { return true }

// reachNamespace is the reach of a policy (PeerAuthentication,
// AuthorizationPolicy, RequestAuthentication) or Sidecar: the proxies of its
// namespace, or everyone when it lives in the root namespace.
func reachNamespace(_, b *Snapshot, changed []metav1.Object, d *Delta) bool {
	for _, o := range changed {
		if o.GetNamespace() == b.RootNamespace {
			return false
		}
		d.Namespaces[o.GetNamespace()] = true
	}
	return true
}

// reachWorkloadEntry: an entry is an endpoint (diffServices) and the
// workload behind a pod-less proxy at its address.
func reachWorkloadEntry(_, _ *Snapshot, changed []metav1.Object, d *Delta) bool {
	for _, o := range changed {
		if we, ok := o.(*networkingv1.WorkloadEntry); ok {
			d.Workloads[we.Namespace+"/"+we.Spec.Address] = true
		}
	}
	return true
}

// reachVirtualService: a VirtualService shapes the routes and TCP listeners
// of its hosts.
func reachVirtualService(_, b *Snapshot, changed []metav1.Object, d *Delta) bool {
	for _, o := range changed {
		vs, ok := o.(*networkingv1.VirtualService)
		if !ok {
			return false
		}
		for _, h := range vs.Spec.Hosts {
			for _, svc := range b.MatchServices(hostmatch.Resolve(h, vs.Namespace)) {
				d.Hosts[svc.Hostname] = true
			}
		}
	}
	return true
}

// reachDestinationRule: a DestinationRule shapes its host's clusters and
// endpoints (subsets), and the routes of every VirtualService sending
// traffic there (hash policies).
func reachDestinationRule(_, b *Snapshot, changed []metav1.Object, d *Delta) bool {
	for _, o := range changed {
		dr, ok := o.(*networkingv1.DestinationRule)
		if !ok {
			return false
		}
		for _, svc := range b.MatchServices(hostmatch.Resolve(dr.Spec.Host, dr.Namespace)) {
			d.destHosts[svc.Hostname] = true
			d.Hosts[svc.Hostname] = true
		}
	}
	return true
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
		if dst != nil && hosts[hostmatch.Resolve(dst.Host, vs.Namespace)] {
			return true
		}
	}
	return false
}

// canSelectProxies reports whether svc may give its namespace's proxies
// inbound ports: a Kubernetes Service always may, a ServiceEntry host only
// through a workloadSelector.
func canSelectProxies(svc *Service) bool {
	return svc.Hostname == KubeHostname(svc.Name, svc.Namespace) || len(svc.Selector) > 0
}

// changedServices returns the old and new versions of every service added,
// removed or changed between two snapshots.
func changedServices(a, b *Snapshot) []*Service {
	var out []*Service
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

// MatchServices returns the services host (a resolved name or a wildcard)
// names.
func (s *Snapshot) MatchServices(host string) []*Service {
	if !hostmatch.IsWildcard(host) {
		if svc := s.ServiceByHost(host); svc != nil {
			return []*Service{svc}
		}
		return nil
	}
	var out []*Service
	for _, svc := range s.Services {
		if hostmatch.Matches(host, svc.Hostname) {
			out = append(out, svc)
		}
	}
	return out
}
