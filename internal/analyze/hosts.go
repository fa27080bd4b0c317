package analyze

import (
	"sort"
	"strings"
	"sync"

	meshapi "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/hostmatch"
)

type serviceEntryHost struct {
	entry *Resource
	se    *networking.ServiceEntry
	host  string
}

// Host is what a host name resolves to: a Kubernetes Service or a
// ServiceEntry, and the ports it offers.
type Host struct {
	Name         string
	Service      *Service
	ServiceEntry *Resource
	Ports        []uint32
}

func (s *Snapshot) indexServiceEntries() {
	for _, r := range s.byKind["ServiceEntry"] {
		se, ok := r.Object.(*networking.ServiceEntry)
		if !ok {
			continue
		}
		for _, h := range se.Spec.Hosts {
			s.serviceEntries = append(s.serviceEntries, &serviceEntryHost{entry: r, se: se, host: ResolveSEHost(h, r.Namespace)})
		}
	}
}

// ResolveSEHost expands a ServiceEntry host: short names are relative to
// the entry's namespace like any other host.
func ResolveSEHost(h, ns string) string {
	if !strings.Contains(h, ".") {
		return ResolveHost(h, ns)
	}
	return h
}

// exportedTo reports whether a resource with exportTo in namespace own is
// visible from namespace ns, by the rule pilot applies (internal/hostmatch).
func exportedTo(exportTo []string, own, ns string) bool { return hostmatch.Exported(exportTo, own, ns) }

// ServiceEntryExportTo is se's exportTo, or the mesh config's
// defaultServiceExportTo when it has none, as pilot reads it.
func (s *Snapshot) ServiceEntryExportTo(se *networking.ServiceEntry) []string {
	return hostmatch.ExportToOr(se.Spec.ExportTo, s.meshConfig().GetDefaultServiceExportTo())
}

// DestinationRuleExportTo is dr's exportTo, or the mesh config's
// defaultDestinationRuleExportTo when it has none, as pilot reads it.
func (s *Snapshot) DestinationRuleExportTo(dr *networking.DestinationRule) []string {
	return hostmatch.ExportToOr(dr.Spec.ExportTo, s.meshConfig().GetDefaultDestinationRuleExportTo())
}

func (s *Snapshot) meshConfig() *meshapi.MeshConfig {
	if s.Mesh == nil {
		return nil
	}
	return s.Mesh.Config
}

// HostMatches reports whether host is matched by pattern, which may start
// with "*." (or be "*"), by the rule pilot applies (internal/hostmatch).
func HostMatches(pattern, host string) bool { return hostmatch.Matches(pattern, host) }

// HostsOverlap reports whether two host patterns can match a common host.
func HostsOverlap(a, b string) bool { return HostMatches(a, b) || HostMatches(b, a) }

// LookupHost finds what host (as written in a resource of namespace ns)
// refers to; ok is false when nothing in the snapshot serves it.
func (s *Snapshot) LookupHost(host, ns string) (Host, bool) {
	fq := ResolveHost(host, ns)
	if svc, ok := s.servicesByHost[fq]; ok {
		h := Host{Name: fq, Service: svc}
		for _, p := range svc.Service.Spec.Ports {
			h.Ports = append(h.Ports, uint32(p.Port))
		}
		return h, true
	}
	for _, e := range s.serviceEntries {
		if !exportedTo(s.ServiceEntryExportTo(e.se), e.entry.Namespace, ns) {
			continue
		}
		if HostMatches(e.host, host) || HostMatches(e.host, fq) {
			h := Host{Name: e.host, ServiceEntry: e.entry}
			for _, p := range e.se.Spec.Ports {
				h.Ports = append(h.Ports, p.Number)
			}
			return h, true
		}
	}
	return Host{}, false
}

// AnyHostMatching reports whether some Service or ServiceEntry host matches
// the (possibly wildcard) pattern written in namespace ns.
func (s *Snapshot) AnyHostMatching(pattern, ns string) bool {
	if !strings.HasPrefix(pattern, "*") {
		_, ok := s.LookupHost(pattern, ns)
		return ok
	}
	for h := range s.servicesByHost {
		if HostMatches(pattern, h) {
			return true
		}
	}
	for _, e := range s.serviceEntries {
		if HostsOverlap(pattern, e.host) {
			return true
		}
	}
	return false
}

// ServicePorts returns a Service's ports.
func ServicePorts(svc *Service) []corev1.ServicePort { return svc.Service.Spec.Ports }

func (s *Snapshot) indexDestinationRules() {
	s.drByHost = map[string][]*Resource{}
	for _, r := range s.byKind["DestinationRule"] {
		dr, ok := r.Object.(*networking.DestinationRule)
		if !ok || dr.Spec.Host == "" {
			continue
		}
		h := ResolveHost(dr.Spec.Host, r.Namespace)
		s.drByHost[h] = append(s.drByHost[h], r)
	}
}

// HasSubset reports whether the DestinationRule that applies to host (as
// written in ns) for proxies in ns defines subset: the rule pilot picks
// (exportTo, then the proxy's, the service's and the root namespace in
// turn, hostmatch.PickRule), so a missing subset is reported exactly when
// pilot gives those proxies no cluster for it. For a host nothing serves,
// any DestinationRule exported to ns counts.
func (s *Snapshot) HasSubset(host, ns, subset string) bool {
	fq := ResolveHost(host, ns)
	h, ok := s.LookupHost(host, ns)
	if !ok {
		for _, name := range []string{fq, host} {
			for _, r := range s.drByHost[name] {
				if exportedTo(s.DestinationRuleExportTo(r.Object.(*networking.DestinationRule)), r.Namespace, ns) && definesSubset(r, subset) {
					return true
				}
			}
		}
		return false
	}
	svcNS := ""
	switch {
	case h.Service != nil:
		svcNS = h.Service.Service.Namespace
	case h.ServiceEntry != nil:
		svcNS = h.ServiceEntry.Namespace
	}
	rules, drs := s.rulesFor(h.Name)
	if i := hostmatch.PickRule(rules, ns, svcNS, s.Mesh.Root(), h.Name); i >= 0 {
		return definesSubset(drs[i], subset)
	}
	return false
}

// drOrder is every DestinationRule in the order pilot weighs them, built
// once per snapshot (analyzers share it, so behind a sync.Once).
type drOrder struct {
	once      sync.Once
	rules     []hostmatch.Rule
	drs       []*Resource
	pos       map[*Resource]int
	wildcards []int // positions of the rules whose host is a wildcard
}

// rulesFor returns, oldest first, the DestinationRules that can apply to
// host: those for exactly that host and the wildcard ones. The others
// never match it, so hostmatch.PickRule picks the same rule from these as
// from all of them, without a pass over every DestinationRule per
// reference (which made analysis grow with the square of its size).
func (s *Snapshot) rulesFor(host string) ([]hostmatch.Rule, []*Resource) {
	o := &s.drOrder
	o.once.Do(func() {
		o.rules, o.drs = s.destinationRulesOldestFirst()
		o.pos = make(map[*Resource]int, len(o.drs))
		for i, r := range o.drs {
			o.pos[r] = i
			if hostmatch.IsWildcard(o.rules[i].Host) {
				o.wildcards = append(o.wildcards, i)
			}
		}
	})
	idx := append([]int(nil), o.wildcards...)
	for _, r := range s.drByHost[host] {
		if i, ok := o.pos[r]; ok && !hostmatch.IsWildcard(o.rules[i].Host) {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	rules, drs := make([]hostmatch.Rule, len(idx)), make([]*Resource, len(idx))
	for k, i := range idx {
		rules[k], drs[k] = o.rules[i], o.drs[i]
	}
	return rules, drs
}

func definesSubset(r *Resource, subset string) bool {
	for _, ss := range r.Object.(*networking.DestinationRule).Spec.Subsets {
		if ss.Name == subset {
			return true
		}
	}
	return false
}

// destinationRulesOldestFirst returns every DestinationRule in the order
// pilot weighs them (created first, then namespace/name), with what
// hostmatch.PickRule reads of each.
func (s *Snapshot) destinationRulesOldestFirst() ([]hostmatch.Rule, []*Resource) {
	var drs []*Resource
	for _, r := range s.byKind["DestinationRule"] {
		if dr, ok := r.Object.(*networking.DestinationRule); ok && dr.Spec.Host != "" {
			drs = append(drs, r)
		}
	}
	sort.SliceStable(drs, func(i, j int) bool {
		ti, tj := drs[i].Meta.CreationTimestamp, drs[j].Meta.CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return drs[i].Namespace+"/"+drs[i].Name < drs[j].Namespace+"/"+drs[j].Name
	})
	rules := make([]hostmatch.Rule, len(drs))
	for i, r := range drs {
		dr := r.Object.(*networking.DestinationRule)
		rules[i] = hostmatch.Rule{Namespace: r.Namespace, Host: ResolveHost(dr.Spec.Host, r.Namespace), ExportTo: s.DestinationRuleExportTo(dr)}
	}
	return rules, drs
}

// DestinationRulesFor returns the DestinationRules whose host is host
// (fully qualified).
func (s *Snapshot) DestinationRulesFor(host string) []*Resource { return s.drByHost[host] }
