// Package xds turns a model.Snapshot into Envoy v3 resources for each proxy
// and serves them over ADS with go-control-plane.
//
// Generation shares work between proxies: a PushContext, built once per
// snapshot, memoises everything that depends only on the snapshot (outbound
// clusters, endpoints, outbound route tables per Sidecar scope), and proxies
// whose generator inputs are equal (same scope, namespace, inbound ports,
// mTLS modes and authorization policies; labels too when rules match on
// them) share one generated config, encoded, hashed and validated once.
// Serving goes through viewCache (cache.go) rather than go-control-plane's
// SnapshotCache: a push touches only the types whose version changed, and
// a delta response is the group's precomputed diff. An endpoint-only
// change rebuilds only the EDS resources of the groups using a changed host.
// A config change is diffed against the previous snapshot (deps.go): for
// VirtualServices, DestinationRules, Services, ServiceEntries,
// WorkloadEntries, Gateways, and Sidecars and security policy outside the
// root namespace, only the groups whose scope sees a touched host, or whose
// namespace holds a touched policy, are rebuilt and only their proxies
// regenerated; root-namespace
// policy and Sidecars rebuild all.
package xds

import (
	"fmt"
	"hash/fnv"
	"maps"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/hostmatch"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// item is a generated resource with its content hash and validation
// result, both computed once however many proxies share it.
type item struct {
	name    string
	msg     proto.Message
	invalid error // go-control-plane's ValidateAll verdict
	// anyMsg carries msg's encoding, made once: a resource shared by 2,000
	// proxies is encoded once, not 2,000 times.
	anyMsg  *anypb.Any
	res     *discoveryv3.Resource // the delta payload, made once too
	hash    uint64
	version string
}

func newItem(name string, m proto.Message) *item {
	var invalid error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		invalid = v.ValidateAll()
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %s: %v", name, err)) // generated messages always marshal
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	sum := h.Sum64()
	a := &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
	v := strconv.FormatUint(sum, 36)
	return &item{name: name, msg: m, hash: sum, invalid: invalid, anyMsg: a, version: v,
		res: &discoveryv3.Resource{Name: name, Version: v, Resource: a}}
}

// PushContext memoises per-snapshot generation shared by many proxies. It is
// safe for concurrent use.
type PushContext struct {
	Snap *model.Snapshot
	tel  *telemetry.Policy // access logs, tracing and metrics per workload
	// epoch is the config the group keys are derived from (keyFor).
	epoch *keyEpoch

	// drByHost are the DestinationRules naming each service host, oldest
	// first; which one applies depends on the proxy's namespace
	// (destinationRule).
	drByHost map[string]*drCandidates
	vsByHost map[string][]*networkingv1.VirtualService // mesh-bound VirtualServices by service host, oldest first
	vsSorted []*networkingv1.VirtualService            // all VirtualServices, oldest first
	mrByHost map[string][]*meshnet.MetaRoute           // MetaRoutes by service host, oldest first
	// sourceLabels is set when some rule matches on client labels, which
	// makes route tables per client workload instead of per namespace;
	// l4SourceLabels when a tls or tcp rule does, which makes a scope's
	// outbound listeners per client labels too.
	sourceLabels, l4SourceLabels bool

	// Memoised results. Each entry is computed once even when many proxies
	// ask for it at the same moment (a push regenerates proxies in parallel).
	mu        sync.Mutex
	clusters  map[string]*lazy[[]*item]              // by service host: that service's outbound clusters
	endpoints map[string]*lazy[[]*item]              // by service host: its cluster load assignments
	routes    map[string]*lazy[*item]                // by scope key + port
	scopes    map[string]*lazy[*scope]               // by scope key
	groups    map[string]*lazy[*Resources]           // by groupKey: config shared by proxies
	vhosts    map[string]*lazy[*routev3.VirtualHost] // outbound virtual hosts shared by route tables
	// sharedGens are the generations of groups' shared outbound sides, by
	// type and content (sharedGen); outSides the outbound sides of
	// sidecars, by scope key and namespace; edsRebuilt the EDS of groups
	// after an endpoint-only change, by old generation and namespace.
	sharedGens map[string]*lazy[*typeGen]
	outSides   map[string]*lazy[*outboundSide]
	edsRebuilt map[string]*lazy[*edsRebuild]
	virtuals   map[string]*lazy[[]*item] // a sidecar's virtual listeners, by listenerKey
	nameTables map[string]*lazy[*item]   // a scope's NDS name table, by scope key
	// The previous context's sharedGens, so unchanged content keeps its
	// generation (and a proxy's next push finds nothing new in it).
	prevSharedGens map[string]*lazy[*typeGen]

	// Set by Reuse: the previous context's groups and the hosts whose
	// endpoints changed since, so a group only swaps its EDS resources.
	prevGroups   map[string]*lazy[*Resources]
	changedHosts map[string]bool

	built atomic.Int64 // groups generated afresh (not carried over)
}

// lazy is a value computed once, by whichever caller needs it first.
type lazy[T any] struct {
	once sync.Once
	v    T
	done atomic.Bool // v is built (read without running once)
}

// memo returns m[key], computing it with build on first use.
func memo[T any](mu *sync.Mutex, m map[string]*lazy[T], key string, build func() T) T {
	mu.Lock()
	l := m[key]
	if l == nil {
		l = &lazy[T]{}
		m[key] = l
	}
	mu.Unlock()
	l.once.Do(func() {
		l.v = build()
		l.done.Store(true)
	})
	return l.v
}

// NewPushContext indexes snap for generation.
func NewPushContext(snap *model.Snapshot) *PushContext {
	pc := &PushContext{
		Snap:      snap,
		epoch:     &keyEpoch{},
		tel:       telemetry.New(snap.Mesh, snap.RootNamespace, snap.Telemetries),
		drByHost:  map[string]*drCandidates{},
		vsByHost:  map[string][]*networkingv1.VirtualService{},
		clusters:  map[string]*lazy[[]*item]{},
		endpoints: map[string]*lazy[[]*item]{},
		routes:    map[string]*lazy[*item]{},
		scopes:    map[string]*lazy[*scope]{},
		groups:    map[string]*lazy[*Resources]{},
		vhosts:    map[string]*lazy[*routev3.VirtualHost]{},

		sharedGens: map[string]*lazy[*typeGen]{},
		outSides:   map[string]*lazy[*outboundSide]{},
		edsRebuilt: map[string]*lazy[*edsRebuild]{},
		virtuals:   map[string]*lazy[[]*item]{},
		nameTables: map[string]*lazy[*item]{},
	}
	drs := append([]*networkingv1.DestinationRule(nil), snap.DestinationRules...)
	sort.SliceStable(drs, func(i, j int) bool { return olderFirst(drs[i], drs[j]) })
	for _, dr := range drs {
		host := resolveHost(dr.Spec.Host, dr.Namespace)
		rule := hostmatch.Rule{Namespace: dr.Namespace, Host: host, ExportTo: pc.Snap.DestinationRuleExportTo(dr)}
		for _, svc := range matchServices(snap, host) {
			c := pc.drByHost[svc.Hostname]
			if c == nil {
				c = &drCandidates{}
				pc.drByHost[svc.Hostname] = c
			}
			c.rules = append(c.rules, rule)
			c.drs = append(c.drs, dr)
		}
	}
	vss := append([]*networkingv1.VirtualService(nil), snap.VirtualServices...)
	sort.Slice(vss, func(i, j int) bool { return olderFirst(vss[i], vss[j]) })
	pc.vsSorted = vss
	pc.indexMetaRoutes()
	for _, vs := range vss {
		for _, hr := range vs.Spec.Http {
			for _, m := range hr.Match {
				if len(m.SourceLabels) > 0 {
					pc.sourceLabels = true
				}
			}
		}
		if l4MatchesOnLabels(vs) {
			pc.sourceLabels, pc.l4SourceLabels = true, true
		}
		if !boundToMesh(vs.Spec.Gateways) {
			continue
		}
		for _, h := range vs.Spec.Hosts {
			for _, svc := range matchServices(snap, resolveHost(h, vs.Namespace)) {
				pc.vsByHost[svc.Hostname] = append(pc.vsByHost[svc.Hostname], vs)
			}
		}
	}
	return pc
}

// olderFirst orders config by creation, then namespace/name, as Istio
// breaks ties between rules.
func olderFirst(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetNamespace()+"/"+a.GetName() < b.GetNamespace()+"/"+b.GetName()
}

// drCandidates are the DestinationRules naming one service host, oldest
// first, with what hostmatch.PickRule reads of each.
type drCandidates struct {
	rules []hostmatch.Rule
	drs   []*networkingv1.DestinationRule
}

// destinationRule returns the DestinationRule that applies to svc for a
// proxy in proxyNS (exportTo and Istio's lookup order, hostmatch.PickRule),
// or nil.
func (pc *PushContext) destinationRule(proxyNS string, svc *model.Service) *networkingv1.DestinationRule {
	c := pc.drByHost[svc.Hostname]
	if c == nil {
		return nil
	}
	if i := hostmatch.PickRule(c.rules, proxyNS, svc.Namespace, pc.Snap.RootNamespace, svc.Hostname); i >= 0 {
		return c.drs[i]
	}
	return nil
}

// ruleKey names the rule a memoised result was built with ("" for none).
func ruleKey(o metav1.Object) string {
	if o == nil || reflect.ValueOf(o).IsNil() {
		return ""
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// virtualServices returns the mesh-bound VirtualServices of host a proxy
// in ns sees (their exportTo admits ns), oldest first.
func (pc *PushContext) virtualServices(host, ns string) []*networkingv1.VirtualService {
	all := pc.vsByHost[host]
	for i, vs := range all {
		if !hostmatch.Exported(pc.Snap.VirtualServiceExportTo(vs), vs.Namespace, ns) {
			// Rarely reached: most VirtualServices are exported everywhere.
			out := append([]*networkingv1.VirtualService(nil), all[:i]...)
			for _, vs := range all[i+1:] {
				if hostmatch.Exported(pc.Snap.VirtualServiceExportTo(vs), vs.Namespace, ns) {
					out = append(out, vs)
				}
			}
			return out
		}
	}
	return all
}

// Built counts the groups generated afresh (not carried over) in this context.
func (pc *PushContext) Built() int64 { return pc.built.Load() }

// Reuse returns a context for next that keeps everything pc computed except
// the endpoints of changedHosts: the endpoint-only push.
func (pc *PushContext) Reuse(next *model.Snapshot, changedHosts map[string]bool) *PushContext {
	n := &PushContext{
		Snap:           next,
		epoch:          pc.epoch,
		tel:            pc.tel,
		drByHost:       pc.drByHost,
		vsByHost:       pc.vsByHost,
		vsSorted:       pc.vsSorted,
		mrByHost:       pc.mrByHost,
		sourceLabels:   pc.sourceLabels,
		l4SourceLabels: pc.l4SourceLabels,
		endpoints:      map[string]*lazy[[]*item]{},
		groups:         map[string]*lazy[*Resources]{},
		sharedGens:     map[string]*lazy[*typeGen]{},
		outSides:       map[string]*lazy[*outboundSide]{},
		edsRebuilt:     map[string]*lazy[*edsRebuild]{},
		virtuals:       map[string]*lazy[[]*item]{},
		nameTables:     map[string]*lazy[*item]{},
	}
	// The maps are copied (their entries shared) so the two contexts never
	// write to one map under different locks.
	pc.mu.Lock()
	defer pc.mu.Unlock()
	n.prevGroups, n.changedHosts = map[string]*lazy[*Resources]{}, changedHosts
	for k, l := range pc.groups {
		// Groups no changed host reaches stay as they are, also for
		// proxies this push does not regenerate, so the next push finds them.
		if l.done.Load() && l.v != nil && !l.v.usesAny(changedHosts) {
			n.groups[k] = l
		} else {
			n.prevGroups[k] = l
		}
	}
	n.prevSharedGens = maps.Clone(pc.sharedGens)
	n.clusters = maps.Clone(pc.clusters)
	n.vhosts = maps.Clone(pc.vhosts)
	n.routes = maps.Clone(pc.routes)
	n.scopes = maps.Clone(pc.scopes)
	for k, eps := range pc.endpoints {
		if h, _, _ := strings.Cut(k, "|"); !changedHosts[h] {
			n.endpoints[k] = eps
		}
	}
	return n
}

// forgetPrevious drops what pc kept of the context before it once the push
// has regenerated every proxy it affects: what the push reused is in pc's
// own maps by then, and the rest would only keep the old config alive.
func (pc *PushContext) forgetPrevious() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.prevSharedGens, pc.prevGroups = nil, nil
}

// follow lets pc reuse the shared generations of old, the context it
// replaces, wherever their content is unchanged.
func (pc *PushContext) follow(old *PushContext) {
	old.mu.Lock()
	defer old.mu.Unlock()
	pc.prevSharedGens = maps.Clone(old.sharedGens)
}

func boundToMesh(gws []string) bool {
	if len(gws) == 0 {
		return true
	}
	for _, g := range gws {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// resolveHost expands a short name ("reviews") to the FQDN in ns, as Istio
// resolves hosts in VirtualServices and DestinationRules.
func resolveHost(h, ns string) string { return hostmatch.Resolve(h, ns) }

// hostMatches reports whether pattern (maybe "*.x" or "*") covers host.
func hostMatches(pattern, host string) bool { return hostmatch.Matches(pattern, host) }

func matchServices(snap *model.Snapshot, host string) []*model.Service {
	return snap.MatchServices(host)
}

// scope is the set of services a proxy's outbound side sees (Sidecar egress).
type scope struct {
	key      string
	ns       string                // the namespace of the proxies it serves
	sidecar  *networkingv1.Sidecar // nil: no Sidecar applies
	services []*model.Service
	hosts    map[string]bool // services' hostnames, for dependency checks
	unknown  unknownTraffic  // what becomes of traffic no service claims
	shared   scopeResources
	logged   loggedListeners
	// labelled are the outbound resources by client labels (labelKey),
	// used instead of shared when tls or tcp rules match on source labels.
	labelledMu sync.Mutex
	labelled   map[string]*scopeResources
}

// scopeFor picks the Sidecar that applies to a workload and returns its scope.
func (pc *PushContext) scopeFor(ns string, lbls map[string]string) *scope {
	return pc.scopeOf(ns, lbls, false)
}

// scopeOf is scopeFor for a proxy that asks for DNS auto-allocation or
// not: with auto, its ServiceEntry hosts without addresses carry their
// auto-allocated ones (Service.AutoAddress) as their Address, so its
// listeners match them and its name table answers them.
func (pc *PushContext) scopeOf(ns string, lbls map[string]string, auto bool) *scope {
	sc := pc.sidecarFor(ns, lbls)
	key := "ns:" + ns
	if sc != nil {
		key = "sc:" + sc.Namespace + "/" + sc.Name + "@" + ns
	}
	if auto {
		key += "|auto"
	}
	return memo(&pc.mu, pc.scopes, key, func() *scope {
		s := &scope{key: key, ns: ns, sidecar: sc, hosts: map[string]bool{}}
		for _, svc := range pc.Snap.Services {
			if s.admits(svc) {
				if auto && svc.Address == "" && svc.AutoAddress != "" {
					c := *svc
					c.Address = svc.AutoAddress
					svc = &c
				}
				s.services = append(s.services, svc)
				s.hosts[svc.Hostname] = true
			}
		}
		s.unknown = pc.unknownTrafficFor(s)
		return s
	})
}

// admits reports whether the scope's proxies see svc.
func (s *scope) admits(svc *model.Service) bool {
	return svc.VisibleTo(s.ns) && (s.sidecar == nil || egressAllows(s.sidecar, s.ns, svc))
}

// sidecarFor returns the Sidecar for a workload: one in its namespace
// selecting it, else its namespace's default, else the root namespace's default.
func (pc *PushContext) sidecarFor(ns string, lbls map[string]string) *networkingv1.Sidecar {
	var nsDefault, rootDefault *networkingv1.Sidecar
	for _, sc := range pc.Snap.Sidecars {
		switch {
		case sc.Namespace == ns && sc.Spec.WorkloadSelector != nil:
			if labels.SelectorFromSet(sc.Spec.WorkloadSelector.Labels).Matches(labels.Set(lbls)) {
				return sc
			}
		case sc.Namespace == ns:
			nsDefault = sc
		case sc.Namespace == pc.Snap.RootNamespace && sc.Spec.WorkloadSelector == nil:
			rootDefault = sc
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	return rootDefault
}

// egressAllows applies a Sidecar's egress "namespace/host" list.
func egressAllows(sc *networkingv1.Sidecar, proxyNS string, svc *model.Service) bool {
	if len(sc.Spec.Egress) == 0 {
		return true
	}
	for _, eg := range sc.Spec.Egress {
		if !egressListenerCovers(eg, svc) {
			continue
		}
		for _, h := range eg.Hosts {
			if hostmatch.EgressAdmits(h, sc.Namespace, svc.Namespace, svc.Hostname) {
				return true
			}
		}
	}
	_ = proxyNS
	return false
}

func egressListenerCovers(eg *networkingapi.IstioEgressListener, svc *model.Service) bool {
	if eg.Port == nil || eg.Port.Number == 0 {
		return true
	}
	_, ok := svc.PortByNumber(eg.Port.Number)
	return ok
}
