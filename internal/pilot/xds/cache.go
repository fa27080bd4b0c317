package xds

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeGen is one xDS type's resources as a group of proxies gets them:
// built once per group and generation, shared read-only by every proxy of
// the group, so a push costs per proxy only the comparison of what changed.
//
// A group's generation is usually two layers: base, the outbound resources
// every group of a scope and namespace has alike (thousands of clusters
// and load assignments), shared by content between groups and across
// pushes; and own, the few resources of the group's inbound side. So a
// group costs memory for its own resources only, and a change of only one
// layer is diffed once for every group sharing the other.
type typeGen struct {
	typeURL string
	version string
	base    *typeGen         // the shared lower layer (itself single-layer), or nil
	own     []*item          // this layer's resources, sent after base's
	byName  map[string]*item // own, by name
	size    int              // resources in both layers

	anysOnce sync.Once
	anys     []*anypb.Any // the SotW payload in send order, made on first SotW use

	id    uint64 // unique, so diffs can name older generations without keeping them alive
	mu    sync.Mutex
	diffs map[uint64]*genDiff // from an older generation (by id) to this one
}

var genIDs atomic.Uint64

// genDiff is what changed between two generations of a type.
type genDiff struct {
	changed []*discoveryv3.Resource
	removed []string
}

// newTypeGen is a single-layer generation of its.
func newTypeGen(typeURL, version string, its []*item) *typeGen {
	return newLayeredGen(typeURL, version, nil, its)
}

// newLayeredGen is a generation made of base's resources, then own's.
func newLayeredGen(typeURL, version string, base *typeGen, own []*item) *typeGen {
	g := &typeGen{
		id:      genIDs.Add(1),
		typeURL: typeURL,
		version: version,
		base:    base,
		own:     own,
		byName:  make(map[string]*item, len(own)),
		size:    len(own),
	}
	if base != nil {
		g.size += base.size
	}
	for _, it := range own {
		g.byName[it.name] = it
	}
	return g
}

// lookup finds a resource by name in either layer.
func (g *typeGen) lookup(name string) *item {
	if it := g.byName[name]; it != nil {
		return it
	}
	if g.base != nil {
		return g.base.lookup(name)
	}
	return nil
}

// each calls fn for every resource, base first, until fn returns false.
func (g *typeGen) each(fn func(*item) bool) {
	if g.base != nil {
		for _, it := range g.base.own {
			if !fn(it) {
				return
			}
		}
	}
	for _, it := range g.own {
		if !fn(it) {
			return
		}
	}
}

// items returns every resource in send order, in a new slice.
func (g *typeGen) items() []*item {
	out := make([]*item, 0, g.size)
	g.each(func(it *item) bool { out = append(out, it); return true })
	return out
}

// sotwAnys is the whole payload of a SotW response, made once per
// generation and only for generations a SotW stream asks for.
func (g *typeGen) sotwAnys() []*anypb.Any {
	g.anysOnce.Do(func() {
		g.anys = make([]*anypb.Any, 0, g.size)
		g.each(func(it *item) bool { g.anys = append(g.anys, it.anyMsg); return true })
	})
	return g.anys
}

// diffFrom returns what changed since old, computed once per pair however
// many proxies move from old to g.
func (g *typeGen) diffFrom(old *typeGen) *genDiff {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.diffs[old.id]; d != nil {
		return d
	}
	d := &genDiff{}
	if g.base != nil && old.base != nil {
		// Layer by layer: the bases' diff is shared by every group moving
		// between the same two bases (and empty when the base is the same).
		// Locks go from a layered generation to its base, never back.
		if g.base != old.base {
			bd := g.base.diffFrom(old.base)
			d.changed = append(d.changed, bd.changed...)
			for _, n := range bd.removed {
				if g.lookup(n) == nil {
					d.removed = append(d.removed, n)
				}
			}
		}
		for _, it := range g.own {
			if o := old.lookup(it.name); o == nil || o.version != it.version {
				d.changed = append(d.changed, it.res)
			}
		}
		for _, it := range old.own {
			if g.lookup(it.name) == nil {
				d.removed = append(d.removed, it.name)
			}
		}
	} else {
		g.each(func(it *item) bool {
			if o := old.lookup(it.name); o == nil || o.version != it.version {
				d.changed = append(d.changed, it.res)
			}
			return true
		})
		old.each(func(it *item) bool {
			if g.lookup(it.name) == nil {
				d.removed = append(d.removed, it.name)
			}
			return true
		})
	}
	if g.diffs == nil {
		g.diffs = map[uint64]*genDiff{}
	}
	// Only the previous generation is ever asked for in practice; keep the
	// map from growing when proxies lag several generations behind.
	if len(g.diffs) > 4 {
		clear(g.diffs)
	}
	g.diffs[old.id] = d
	return d
}

// view is everything one proxy is to be served: one generation per type,
// indexed as TypeURLs.
type view [numTypes]*typeGen

// numTypes is len(TypeURLs).
const numTypes = 6

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
	mu     sync.RWMutex
	nodes  map[string]*nodeEntry
	budget *sendBudget
}

type nodeEntry struct {
	node    string
	budget  *sendBudget
	mu      sync.Mutex
	view    view
	charged [numTypes]int64 // budget bytes held by each type's unacknowledged response
	charges [numTypes]int   // counts charges, so a stale expiry releases nothing
	parked  bool            // waiting for budget
	watches map[*cacheWatch]struct{}
	// What the last delta response of each stream carried, by stream
	// (its response channel) and type index.
	sent map[chan cachev3.DeltaResponse]*[numTypes]sentState
}

type cacheWatch struct {
	typeIdx int
	req     *cachev3.Request
	dreq    *cachev3.DeltaRequest
	sub     cachev3.Subscription
	ch      chan cachev3.Response
	dch     chan cachev3.DeltaResponse
}

func newViewCache(maxInFlight int64) *viewCache {
	c := &viewCache{nodes: map[string]*nodeEntry{}}
	c.budget = &sendBudget{limit: maxInFlight, retry: c.retry}
	return c
}

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
		e = &nodeEntry{node: node, budget: c.budget, watches: map[*cacheWatch]struct{}{}, sent: map[chan cachev3.DeltaResponse]*[numTypes]sentState{}}
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
	e := c.nodes[node]
	delete(c.nodes, node)
	c.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	var held int64
	for i := range e.charged {
		held += e.charged[i]
		e.charged[i] = 0
	}
	e.mu.Unlock()
	c.budget.release(held)
}

// retry answers a node's watches that waited for budget.
func (c *viewCache) retry(node string) {
	c.mu.RLock()
	e := c.nodes[node]
	c.mu.RUnlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	e.parked = false
	for i := range TypeURLs {
		for w := range e.watches {
			if w.typeIdx == i && e.respond(w) {
				delete(e.watches, w)
			}
		}
	}
	e.mu.Unlock()
}

// respond sends w its response if there is something to send. The
// server's channels hold one response per type, and a watch is answered
// at most once, so the send never blocks. A large response waits (the
// watch stays open) while the bytes in flight are over budget.
func (e *nodeEntry) respond(w *cacheWatch) bool {
	g := e.view[w.typeIdx]
	if g == nil {
		return false
	}
	if w.req != nil {
		r := e.sotwResponse(w, g)
		if r == nil || !e.charge(w.typeIdx, r.size()) {
			return false
		}
		w.ch <- r
		return true
	}
	r, commit := e.deltaResponse(w, g)
	if r == nil || !e.charge(w.typeIdx, r.size()) {
		return false
	}
	commit()
	w.dch <- r
	return true
}

// charge takes n bytes of budget for a response of type t; false parks the
// node until budget is released.
func (e *nodeEntry) charge(t int, n int64) bool {
	if n < smallResponse {
		return true
	}
	if !e.budget.acquire(n, e.node, !e.parked) {
		e.parked = true
		return false
	}
	e.charged[t] += n
	e.charges[t]++
	seq := e.charges[t]
	// A proxy that never answers must not hold budget for ever.
	time.AfterFunc(budgetHold, func() {
		e.mu.Lock()
		if e.charges[t] == seq {
			e.acked(t)
		}
		e.mu.Unlock()
	})
	return true
}

// budgetHold is the longest a response holds budget without an answer.
const budgetHold = 60 * time.Second

// acked releases the budget of type t's previous response: the client
// answered it (ACK or NACK), so it is no longer buffered anywhere.
func (e *nodeEntry) acked(t int) {
	if n := e.charged[t]; n > 0 {
		e.charged[t] = 0
		e.budget.release(n)
	}
}

// smallResponse is the size under which responses skip the budget.
const smallResponse = 64 << 10

// sendBudget bounds the bytes of large responses sent and not yet
// answered. Without it, 2,000 proxies connecting at once each get a
// 1.6 MiB response encoded and queued in gRPC at the same moment: 3 GiB.
type sendBudget struct {
	limit int64
	retry func(node string)

	mu      sync.Mutex
	used    int64
	waiting []string // nodes, first come first served
}

// acquire takes n bytes if they fit (or nothing is in flight, so one
// response larger than the limit still goes); otherwise it queues node for
// a retry when enqueue is set.
func (b *sendBudget) acquire(n int64, node string, enqueue bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit <= 0 || b.used == 0 || b.used+n <= b.limit {
		b.used += n
		return true
	}
	if enqueue {
		b.waiting = append(b.waiting, node)
	}
	return false
}

// release returns n bytes and retries waiting nodes, outside any node lock
// (the caller may hold one, so the retries run on their own goroutine).
func (b *sendBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	var wake []string
	if len(b.waiting) > 0 {
		wake, b.waiting = b.waiting, nil
	}
	b.mu.Unlock()
	if len(wake) > 0 {
		go func() {
			for _, node := range wake {
				b.retry(node)
			}
		}()
	}
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
			if len(known) != g.size {
				g.each(func(it *item) bool {
					if _, ok := known[it.name]; !ok {
						missing = true
					}
					return !missing
				})
			}
		} else {
			for _, n := range names {
				if _, ok := known[n]; !ok && g.lookup(n) != nil {
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
		r.anys = g.sotwAnys()
		r.returned = make(map[string]string, g.size)
		g.each(func(it *item) bool {
			r.returned[it.name] = g.version
			return true
		})
		return r
	}
	// Endpoints, routes and secrets need not come whole in SotW: a proxy
	// keeps what a response leaves out. For them the returned map holds
	// each resource's own version, so a push sends only those that changed
	// (an endpoint change of one service: one load assignment, not all).
	partial := !cachev3.ResourceRequiresFullStateInSotw(g.typeURL)
	r.returned = make(map[string]string, len(names))
	for _, n := range names {
		it := g.lookup(n)
		if it == nil {
			continue
		}
		if _, dup := r.returned[n]; dup {
			continue
		}
		if !partial {
			r.returned[n] = g.version
			r.anys = append(r.anys, it.anyMsg)
			continue
		}
		r.returned[n] = it.version
		if v, ok := known[n]; !ok || v != it.version {
			r.anys = append(r.anys, it.anyMsg)
		}
	}
	if partial && len(r.anys) == 0 {
		return nil // nothing this proxy asked for changed
	}
	return r
}

func sameMap(a, b map[string]string) bool {
	return a != nil && b != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// sentFor is what w's stream holds of w's type.
func (e *nodeEntry) sentFor(w *cacheWatch) *sentState {
	st := e.sent[w.dch]
	if st == nil {
		st = &[numTypes]sentState{}
		e.sent[w.dch] = st
	}
	return &st[w.typeIdx]
}

func (e *nodeEntry) deltaResponse(w *cacheWatch, g *typeGen) (*deltaResponse, func()) {
	sent := e.sentFor(w)
	sub := w.sub
	wildcard := sub.IsWildcard()
	subscribed := sub.SubscribedResources()
	r := &deltaResponse{req: w.dreq, version: g.version}
	wanted := func(name string) bool {
		if wildcard {
			return true
		}
		_, ok := subscribed[name]
		return ok
	}
	// Fast path: the client holds exactly the generation we last sent it
	// and the request changed no subscription, so the changes are the
	// group's precomputed diff.
	fast := sent.gen != nil && sent.full &&
		len(w.dreq.GetResourceNamesSubscribe()) == 0 && len(w.dreq.GetResourceNamesUnsubscribe()) == 0
	// current counts the resources of g the client will hold at g's
	// version once the response is received.
	current := 0
	switch {
	case fast && sent.gen == g:
		current = g.size
	case fast:
		d := g.diffFrom(sent.gen)
		for _, res := range d.changed {
			if wanted(res.Name) {
				r.resources = append(r.resources, res)
			}
		}
		r.removed = d.removed // a full client holds every name the old generation had
		if len(r.resources) == len(d.changed) {
			current = g.size
		}
	default:
		g.each(func(it *item) bool {
			v, ok := sent.held(it.name)
			switch {
			case ok && v == it.version:
				current++
			case wanted(it.name):
				r.resources = append(r.resources, it.res)
				current++
			}
			return true
		})
		sent.eachHeld(func(n string) {
			if g.lookup(n) == nil {
				r.removed = append(r.removed, n)
			}
		})
	}
	// The first wildcard request is answered even when empty, or Envoy
	// never finishes initialising.
	first := wildcard && w.dreq.GetResponseNonce() == ""
	if len(r.resources) == 0 && len(r.removed) == 0 && !first {
		return nil, nil
	}
	if sent.marker == nil {
		sent.marker = map[string]string{}
	}
	r.returned = sent.marker
	return r, func() {
		if current == g.size {
			// Every resource of g, and nothing else: removed names are
			// gone, and every held name is either in g or removed.
			*sent = sentState{gen: g, full: true, marker: sent.marker}
			return
		}
		sent.materialize()
		for _, res := range r.resources {
			sent.has[res.Name] = res.Version
		}
		for _, n := range r.removed {
			delete(sent.has, n)
		}
		sent.gen = g
	}
}

// CreateWatch implements cachev3.ConfigWatcher for SotW streams.
func (c *viewCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	idx := typeIndexOf(req.GetTypeUrl())
	if idx < 0 {
		return func() {}, nil // a type pilot does not serve: never answered
	}
	return c.watch(req.GetNode().GetId(), req.GetResponseNonce() != "", &cacheWatch{typeIdx: idx, req: req, sub: sub, ch: ch})
}

// CreateDeltaWatch implements cachev3.ConfigWatcher for delta streams.
func (c *viewCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	idx := typeIndexOf(req.GetTypeUrl())
	if idx < 0 {
		return func() {}, nil
	}
	return c.watch(req.GetNode().GetId(), req.GetResponseNonce() != "", &cacheWatch{typeIdx: idx, dreq: req, sub: sub, dch: ch})
}

func (c *viewCache) watch(node string, answered bool, w *cacheWatch) (func(), error) {
	e := c.entry(node)
	e.mu.Lock()
	defer e.mu.Unlock()
	if answered {
		e.acked(w.typeIdx)
	}
	if w.dreq != nil {
		e.sentFor(w).absorb(w.sub.ReturnedResources(), w.dreq.GetResourceNamesUnsubscribe())
	}
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

func (r *sotwResponse) size() int64 {
	var n int64
	for _, a := range r.anys {
		n += int64(len(a.Value))
	}
	return n
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

func (r *deltaResponse) size() int64 {
	var n int64
	for _, res := range r.resources {
		n += int64(len(res.Resource.Value))
	}
	return n
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
