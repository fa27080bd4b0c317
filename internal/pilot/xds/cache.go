package xds

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeGen is one xDS type's resources as a group of proxies gets them:
// built once per group and generation, shared read-only by every proxy of
// the group, so a push costs per proxy only the comparison of what changed.
type typeGen struct {
	typeURL  string
	version  string
	items    []*item
	byName   map[string]*item
	versions map[string]string // name → resource version, for delta
	anys     []*anypb.Any      // the SotW payload, in items order
	res      []*discoveryv3.Resource

	mu    sync.Mutex
	diffs map[*typeGen]*genDiff // from an older generation to this one
}

// genDiff is what changed between two generations of a type.
type genDiff struct {
	changed []*discoveryv3.Resource
	removed []string
}

func newTypeGen(typeURL, version string, its []*item) *typeGen {
	g := &typeGen{
		typeURL:  typeURL,
		version:  version,
		items:    its,
		byName:   make(map[string]*item, len(its)),
		versions: make(map[string]string, len(its)),
		anys:     make([]*anypb.Any, len(its)),
		res:      make([]*discoveryv3.Resource, len(its)),
	}
	for i, it := range its {
		g.byName[it.name] = it
		g.versions[it.name] = it.version
		g.anys[i] = it.anyMsg
		g.res[i] = &discoveryv3.Resource{Name: it.name, Version: it.version, Resource: g.anys[i]}
	}
	return g
}

// diffFrom returns what changed since old, computed once per pair however
// many proxies move from old to g.
func (g *typeGen) diffFrom(old *typeGen) *genDiff {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.diffs[old]; d != nil {
		return d
	}
	d := &genDiff{}
	for i, it := range g.items {
		if o := old.byName[it.name]; o == nil || o.version != it.version {
			d.changed = append(d.changed, g.res[i])
		}
	}
	for _, it := range old.items {
		if g.byName[it.name] == nil {
			d.removed = append(d.removed, it.name)
		}
	}
	if g.diffs == nil {
		g.diffs = map[*typeGen]*genDiff{}
	}
	// Only the previous generation is ever asked for in practice; keep the
	// map from growing when proxies lag several generations behind.
	if len(g.diffs) > 4 {
		clear(g.diffs)
	}
	g.diffs[old] = d
	return d
}

// view is everything one proxy is to be served: one generation per type,
// indexed as TypeURLs.
type view [5]*typeGen

func typeIndexOf(typeURL string) int {
	for i, t := range TypeURLs {
		if t == typeURL {
			return i
		}
	}
	return -1
}

// viewCache serves go-control-plane's xDS server from per-proxy views. It
// replaces cachev3.SnapshotCache, whose cost per push is a copy of every
// resource map of every proxy under one global lock; here a push only
// touches the types that changed, under a per-proxy lock, and delta
// responses reuse a diff computed once per group of proxies.
type viewCache struct {
	mu    sync.RWMutex
	nodes map[string]*nodeEntry
}

type nodeEntry struct {
	mu      sync.Mutex
	view    view
	watches map[*cacheWatch]struct{}
	// What the last delta response of each stream carried, by stream
	// (its response channel) and type index.
	sent map[chan cachev3.DeltaResponse]*[5]sentState
}

type sentState struct {
	gen      *typeGen
	versions map[string]string // the map handed to the server as returned resources
}

type cacheWatch struct {
	typeIdx int
	req     *cachev3.Request
	dreq    *cachev3.DeltaRequest
	sub     cachev3.Subscription
	ch      chan cachev3.Response
	dch     chan cachev3.DeltaResponse
}

func newViewCache() *viewCache { return &viewCache{nodes: map[string]*nodeEntry{}} }

func (c *viewCache) entry(node string) *nodeEntry {
	c.mu.RLock()
	e := c.nodes[node]
	c.mu.RUnlock()
	if e != nil {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.nodes[node]; e == nil {
		e = &nodeEntry{watches: map[*cacheWatch]struct{}{}, sent: map[chan cachev3.DeltaResponse]*[5]sentState{}}
		c.nodes[node] = e
	}
	return e
}

// setView installs a proxy's new view and answers its open watches of the
// types whose version changed.
func (c *viewCache) setView(node string, v view) {
	e := c.entry(node)
	e.mu.Lock()
	defer e.mu.Unlock()
	changed := false
	for i, g := range v {
		if old := e.view[i]; old != nil && g != nil && old.version == g.version {
			continue // same content: keep the generation the streams know
		}
		e.view[i] = g
		changed = true
	}
	if !changed {
		return
	}
	// Answer in TypeURLs order (clusters, endpoints, listeners, routes,
	// secrets), as Envoy wants them over ADS.
	for i := range TypeURLs {
		for w := range e.watches {
			if w.typeIdx == i && e.respond(w) {
				delete(e.watches, w)
			}
		}
	}
}

// clear forgets a proxy that has no stream left.
func (c *viewCache) clear(node string) {
	c.mu.Lock()
	delete(c.nodes, node)
	c.mu.Unlock()
}

// respond sends w its response if there is something to send. The
// server's channels hold one response per type, and a watch is answered
// at most once, so the send never blocks.
func (e *nodeEntry) respond(w *cacheWatch) bool {
	g := e.view[w.typeIdx]
	if g == nil {
		return false
	}
	if w.req != nil {
		r := e.sotwResponse(w, g)
		if r == nil {
			return false
		}
		w.ch <- r
		return true
	}
	r := e.deltaResponse(w, g)
	if r == nil {
		return false
	}
	w.dch <- r
	return true
}

func (e *nodeEntry) sotwResponse(w *cacheWatch, g *typeGen) *sotwResponse {
	names := w.req.GetResourceNames()
	wildcard := len(names) == 0 || w.sub.IsWildcard()
	known := w.sub.ReturnedResources()
	if w.req.GetVersionInfo() == g.version {
		// Same version: answer only when the client asks for a resource it
		// has not been sent (a new subscription).
		missing := false
		if wildcard {
			if len(known) != len(g.items) {
				for _, it := range g.items {
					if _, ok := known[it.name]; !ok {
						missing = true
						break
					}
				}
			}
		} else {
			for _, n := range names {
				if _, ok := known[n]; !ok && g.byName[n] != nil {
					missing = true
					break
				}
			}
		}
		if !missing {
			return nil
		}
	}
	r := &sotwResponse{req: w.req, version: g.version}
	if wildcard {
		r.anys = g.anys
		r.returned = make(map[string]string, len(g.items))
		for _, it := range g.items {
			r.returned[it.name] = g.version
		}
		return r
	}
	r.returned = make(map[string]string, len(names))
	for _, n := range names {
		if it := g.byName[n]; it != nil {
			if _, dup := r.returned[n]; dup {
				continue
			}
			r.anys = append(r.anys, it.anyMsg)
			r.returned[n] = g.version
		}
	}
	return r
}

func sameMap(a, b map[string]string) bool {
	return a != nil && b != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func (e *nodeEntry) deltaResponse(w *cacheWatch, g *typeGen) *deltaResponse {
	st := e.sent[w.dch]
	if st == nil {
		st = &[5]sentState{}
		e.sent[w.dch] = st
	}
	sent := &st[w.typeIdx]
	sub := w.sub
	known := sub.ReturnedResources()
	wildcard := sub.IsWildcard()
	subscribed := sub.SubscribedResources()
	r := &deltaResponse{req: w.dreq, version: g.version}
	// Fast path: the client holds exactly the generation we last sent it
	// (the server hands back our own map, untouched since no subscription
	// changed), so the changes are the group's precomputed diff.
	fast := sent.gen != nil && sameMap(known, sent.versions) && len(known) == len(sent.versions) &&
		len(w.dreq.GetResourceNamesSubscribe()) == 0 && len(w.dreq.GetResourceNamesUnsubscribe()) == 0
	switch {
	case fast && sent.gen == g:
		// nothing new
	case fast:
		d := g.diffFrom(sent.gen)
		for _, res := range d.changed {
			if _, ok := subscribed[res.Name]; wildcard || ok {
				r.resources = append(r.resources, res)
			}
		}
		for _, n := range d.removed {
			if _, ok := known[n]; ok {
				r.removed = append(r.removed, n)
			}
		}
	default:
		for i, it := range g.items {
			if _, ok := subscribed[it.name]; !wildcard && !ok {
				continue
			}
			if v, ok := known[it.name]; !ok || v != it.version {
				r.resources = append(r.resources, g.res[i])
			}
		}
		for n := range known {
			if g.byName[n] == nil {
				r.removed = append(r.removed, n)
			}
		}
	}
	// The first wildcard request is answered even when empty, or Envoy
	// never finishes initialising.
	first := wildcard && w.dreq.GetResponseNonce() == ""
	if len(r.resources) == 0 && len(r.removed) == 0 && !first {
		return nil
	}
	if wildcard {
		r.returned = maps.Clone(g.versions)
	} else {
		r.returned = make(map[string]string, len(subscribed))
		for n := range subscribed {
			if it := g.byName[n]; it != nil {
				r.returned[n] = it.version
			}
		}
	}
	*sent = sentState{gen: g, versions: r.returned}
	return r
}

// CreateWatch implements cachev3.ConfigWatcher for SotW streams.
func (c *viewCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	idx := typeIndexOf(req.GetTypeUrl())
	if idx < 0 {
		return func() {}, nil // a type pilot does not serve: never answered
	}
	return c.watch(req.GetNode().GetId(), &cacheWatch{typeIdx: idx, req: req, sub: sub, ch: ch})
}

// CreateDeltaWatch implements cachev3.ConfigWatcher for delta streams.
func (c *viewCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	idx := typeIndexOf(req.GetTypeUrl())
	if idx < 0 {
		return func() {}, nil
	}
	return c.watch(req.GetNode().GetId(), &cacheWatch{typeIdx: idx, dreq: req, sub: sub, dch: ch})
}

func (c *viewCache) watch(node string, w *cacheWatch) (func(), error) {
	e := c.entry(node)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.respond(w) {
		return func() {}, nil
	}
	e.watches[w] = struct{}{}
	return func() {
		e.mu.Lock()
		delete(e.watches, w)
		e.mu.Unlock()
	}, nil
}

// Fetch implements cachev3.ConfigFetcher; pilot serves streams only.
func (c *viewCache) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, errors.New("pilot serves xDS over streams only, not REST")
}

// sotwResponse is a state-of-the-world response; the resources are shared
// with every proxy of the group, the envelope is per response.
type sotwResponse struct {
	req      *cachev3.Request
	version  string
	anys     []*anypb.Any
	returned map[string]string
}

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	return &discoveryv3.DiscoveryResponse{VersionInfo: r.version, Resources: r.anys, TypeUrl: r.req.GetTypeUrl()}, nil
}
func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }

// deltaResponse is an incremental response.
type deltaResponse struct {
	req       *cachev3.DeltaRequest
	version   string
	resources []*discoveryv3.Resource
	removed   []string
	returned  map[string]string
}

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	return &discoveryv3.DeltaDiscoveryResponse{
		SystemVersionInfo: r.version,
		Resources:         r.resources,
		RemovedResources:  r.removed,
		TypeUrl:           r.req.GetTypeUrl(),
	}, nil
}
func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                          { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                { return r.returned }
func (r *deltaResponse) GetReturnedResources() map[string]string             { return r.returned }
func (r *deltaResponse) GetContext() context.Context                         { return context.Background() }
