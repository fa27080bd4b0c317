package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// Server keeps every connected proxy's view of the model up to date, and
// records what each proxy was sent and acknowledged.
type Server struct {
	cache   *viewCache
	Secrets SecretSource // nil: no SDS
	Metrics *Metrics     // nil: no metrics
	Log     *slog.Logger
	// RebuildAll turns dependency tracking off: every config change
	// rebuilds every group (only changed types are still sent). For
	// comparison in benchmarks; change it only between Updates.
	RebuildAll bool

	xds serverv3.Server

	mu      sync.Mutex
	pc      *PushContext
	proxies map[string]*proxyState // by node id
	streams map[int64]string       // stream id → node id
	// plaintext holds the streams opened without a mesh client certificate.
	plaintext map[int64]struct{}
	ready     chan struct{}
	once      sync.Once

	// Staged release (stage.go): the plan of the last push and what it
	// decided; nil while nothing is staged. updateMu serialises pushes.
	updateMu  sync.Mutex
	plan      rollout.Plan
	staging   atomic.Pointer[staging]
	restaging atomic.Bool
	// OnReject is told (on its own goroutine) when a staged proxy rejects
	// a candidate: a NACK of a type the candidate changed, or config
	// generated from it that fails validation.
	OnReject func(rollout.Rejection)
}

type proxyState struct {
	proxy   *model.Proxy
	streams int
	version string // as counted in pilot_xds
	// plaintext is set while the proxy's stream came over a connection
	// without a mesh client certificate (15010): anyone can claim any node
	// id there, so it is sent no workload certificate and key.
	plaintext atomic.Bool
	// key is the proxy's group key as last derived (PushContext.keyFor).
	key atomic.Pointer[keyMemo]

	mu        sync.Mutex
	res       *Resources
	variant   string                 // the candidates res was generated with ("": the released world)
	status    map[string]*typeStatus // by type URL
	pushStart map[string]time.Time   // when a new version of a type was set, until acked
}

type typeStatus struct {
	sent, acked, nonce, nack string
	nonces                   map[string]string // delta: nonce → version it carried
}

// MaxInFlightBytes bounds the encoded bytes of large responses pilot has
// sent and proxies have not yet answered; the rest wait their turn.
var MaxInFlightBytes int64 = 128 << 20

// NewServer returns a server with an empty model; call Update before proxies
// can be served (their streams wait until then).
func NewServer(ctx context.Context, secrets SecretSource, metrics *Metrics, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cache:     newViewCache(MaxInFlightBytes),
		Secrets:   secrets,
		Metrics:   metrics,
		Log:       log,
		proxies:   map[string]*proxyState{},
		streams:   map[int64]string{},
		plaintext: map[int64]struct{}{},
		ready:     make(chan struct{}),
	}
	s.xds = serverv3.NewServer(ctx, s.cache, s.callbacks())
	return s
}

// XDS is the gRPC service implementation to register (ADS and the per-type services).
func (s *Server) XDS() serverv3.Server { return s.xds }

// Ready is closed once the first snapshot has arrived.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// connect registers a proxy on its first request and gives it a snapshot.
func (s *Server) connect(streamID int64, node *corev3.Node) error {
	s.mu.Lock()
	if _, ok := s.streams[streamID]; ok {
		s.mu.Unlock()
		return nil
	}
	if node == nil || node.Id == "" {
		s.mu.Unlock()
		return fmt.Errorf("stream %d: the first request carries no node id", streamID)
	}
	p, err := model.ParseNodeID(node.Id)
	if err == nil {
		p.Metadata, err = model.ParseNodeMetadata(node.Metadata)
		if err != nil {
			err = fmt.Errorf("node %s: %w", node.Id, err)
		}
	}
	if err != nil {
		s.mu.Unlock()
		if s.Metrics != nil {
			s.Metrics.RejectedStreams.Inc()
		}
		return err
	}
	_, plain := s.plaintext[streamID]
	if ps := s.proxies[node.Id]; ps != nil && ps.plaintext.Load() != plain {
		// Streams of one node id share what is pushed to it: a plaintext
		// stream beside an mTLS one would receive that proxy's secrets
		// (workload certificate, gateway credentials).
		s.mu.Unlock()
		if s.Metrics != nil {
			s.Metrics.RejectedStreams.Inc()
		}
		return fmt.Errorf("node %s is already connected on pilot's other xDS port (plaintext and mTLS streams of one node id are not mixed)", node.Id)
	}
	s.streams[streamID] = node.Id
	ps := s.proxies[node.Id]
	fresh := ps == nil
	if fresh {
		ps = &proxyState{proxy: p, status: map[string]*typeStatus{}, pushStart: map[string]time.Time{}, version: reportedVersion(p, node)}
		s.proxies[node.Id] = ps
	}
	ps.streams++
	ps.plaintext.Store(plain)
	pc := s.pc
	s.mu.Unlock()
	if fresh && s.Metrics != nil {
		s.Metrics.connected(ps.version, 1)
	}
	s.Log.Info("proxy connected", "proxy", node.Id, "stream", streamID)
	if fresh && pc != nil {
		if _, err := s.push(pc, ps, "", time.Now()); err != nil {
			s.Log.Error("generate config", "proxy", node.Id, "err", err)
		}
		if s.staging.Load() != nil {
			s.restage()
		}
	}
	return nil
}

// restage works the stages out again over the proxies now connected (a
// proxy joining mid-rollout may belong to a stage), once for a burst of
// connections.
func (s *Server) restage() {
	if !s.restaging.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(100*time.Millisecond, func() {
		s.restaging.Store(false)
		s.mu.Lock()
		pc, plan := s.pc, s.plan
		s.mu.Unlock()
		if len(plan.Candidates) > 0 {
			s.UpdateStaged(pc.Snap, model.Change{Full: true}, plan)
		}
	})
}

// rejected lays a staged proxy's rejection (of typeURL; "" when pilot
// could not send its config at all) on the candidates that changed it.
func (s *Server) rejected(st *staging, pc *PushContext, ps *proxyState, variant, typeURL, reason string) {
	if s.OnReject == nil || st == nil {
		return
	}
	short := "config"
	if typeURL != "" {
		short = ShortType(typeURL)
	}
	for _, c := range st.blame(variant, pc, ps.proxy, typeURL) {
		r := rollout.Rejection{ID: c.ID, Revision: c.Revision, Proxy: ps.proxy.ID, Type: short, Reason: reason}
		go s.OnReject(r)
	}
}

func (s *Server) disconnect(streamID int64) {
	s.mu.Lock()
	delete(s.plaintext, streamID)
	id, ok := s.streams[streamID]
	if !ok {
		s.mu.Unlock()
		return
	}
	delete(s.streams, streamID)
	ps := s.proxies[id]
	ps.streams--
	gone := ps.streams <= 0
	if gone {
		delete(s.proxies, id)
		s.cache.clear(id)
	}
	s.mu.Unlock()
	if gone && s.Metrics != nil {
		s.Metrics.connected(ps.version, -1)
		s.Metrics.forget(id)
	}
	s.Log.Info("proxy disconnected", "proxy", id, "stream", streamID)
}

// has reports whether r gives the proxy any resource of typeURL.
func (r *Resources) has(typeURL string) bool {
	if r.byType != nil {
		return len(r.byType[typeURL]) > 0
	}
	i := typeIndexOf(typeURL)
	return i >= 0 && r.gens[i] != nil && r.gens[i].size > 0
}

// reportedVersion is the version a proxy is counted under in pilot_xds:
// its ISTIO_VERSION metadata, else the node's user agent version.
func reportedVersion(p *model.Proxy, node *corev3.Node) string {
	if v := p.Metadata.IstioVersion; v != "" {
		return v
	}
	if v := node.GetUserAgentVersion(); v != "" {
		return v
	}
	if v := node.GetUserAgentBuildVersion().GetVersion(); v != nil {
		return fmt.Sprintf("%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
	}
	return "unknown"
}

func (s *Server) state(streamID int64) *proxyState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proxies[s.streams[streamID]]
}

// request records an ACK or NACK carried by a request. For a NACK it
// returns the version that was rejected.
func (s *Server) request(streamID int64, typeURL, nonce, version string, errDetail string, delta bool) (rejected string) {
	ps := s.state(streamID)
	if ps == nil || nonce == "" {
		return ""
	}
	ps.mu.Lock()
	st := ps.typeStatus(typeURL)
	if delta {
		version = st.nonces[nonce]
		delete(st.nonces, nonce)
	}
	var ackedLatency time.Duration
	acked, converged := false, false
	variant := ""
	if errDetail != "" {
		st.nack = errDetail
		rejected = st.sent
		if delta {
			rejected = version
		}
		if ps.res != nil && ps.variant != "" && rejected == ps.res.Version(typeURL) {
			// The proxy refused what its candidate made of this type.
			variant = ps.variant
		}
	} else {
		st.acked, st.nack = version, ""
		if t, ok := ps.pushStart[typeURL]; ok && ps.res != nil && version == ps.res.Version(typeURL) {
			ackedLatency, acked = time.Since(t), true
			delete(ps.pushStart, typeURL)
			converged = true
			for t := range ps.pushStart {
				// A type the proxy is given nothing of (ECDS, SDS without secrets) is not waited for.
				if ps.res.has(t) {
					converged = false
				}
			}
		}
	}
	ps.mu.Unlock()
	if variant != "" {
		s.mu.Lock()
		pc := s.pc
		s.mu.Unlock()
		s.rejected(s.staging.Load(), pc, ps, variant, typeURL, errDetail)
	}
	if errDetail != "" {
		s.Log.Warn("proxy rejected config (NACK)", "proxy", ps.proxy.ID, "type", ShortType(typeURL), "nonce", nonce, "error", errDetail)
		if s.Metrics != nil {
			s.Metrics.NACKs.WithLabelValues(metricType(typeURL)).Inc()
		}
	}
	if s.Metrics != nil {
		s.Metrics.rejected(typeURL, ps.proxy.ID, errDetail)
	}
	if acked && s.Metrics != nil {
		s.Metrics.ConvergeSeconds.WithLabelValues(ShortType(typeURL)).Observe(ackedLatency.Seconds())
		if converged {
			// The last type of the change acknowledged: the proxy has all of it.
			s.Metrics.Convergence.WithLabelValues().Observe(ackedLatency.Seconds())
		}
	}
	return rejected
}

func (s *Server) response(streamID int64, typeURL, nonce, version string, delta bool) {
	ps := s.state(streamID)
	if ps == nil {
		return
	}
	ps.mu.Lock()
	st := ps.typeStatus(typeURL)
	st.sent, st.nonce = version, nonce
	if delta {
		if st.nonces == nil {
			st.nonces = map[string]string{}
		}
		st.nonces[nonce] = version
	}
	ps.mu.Unlock()
	if s.Metrics != nil {
		s.Metrics.Pushes.WithLabelValues(metricType(typeURL)).Inc()
	}
}

func (ps *proxyState) typeStatus(typeURL string) *typeStatus {
	st := ps.status[typeURL]
	if st == nil {
		st = &typeStatus{}
		ps.status[typeURL] = st
	}
	return st
}

func (s *Server) callbacks() serverv3.Callbacks {
	opened := func(ctx context.Context, id int64, _ string) error {
		if !meshAuthenticated(ctx) {
			s.mu.Lock()
			s.plaintext[id] = struct{}{}
			s.mu.Unlock()
		}
		return nil
	}
	return serverv3.CallbackFuncs{
		StreamOpenFunc:      opened,
		DeltaStreamOpenFunc: opened,
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			if err := s.connect(id, req.Node); err != nil {
				return err
			}
			rejected := s.request(id, req.TypeUrl, req.ResponseNonce, req.VersionInfo, req.GetErrorDetail().GetMessage(), false)
			if rejected != "" {
				// The cache answers any request whose version differs from its
				// own by resending, so a NACK would loop forever; present the
				// rejected version as current so the next push waits for a change.
				req.VersionInfo = rejected
			}
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.response(id, resp.TypeUrl, resp.Nonce, resp.VersionInfo, false)
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { s.disconnect(id) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if err := s.connect(id, req.Node); err != nil {
				return err
			}
			s.request(id, req.TypeUrl, req.ResponseNonce, "", req.GetErrorDetail().GetMessage(), true)
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.response(id, resp.TypeUrl, resp.Nonce, resp.SystemVersionInfo, true)
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.disconnect(id) },
	}
}

// meshAuthenticated reports whether the stream's connection presented a
// verified client certificate (only the mTLS port asks for one).
func meshAuthenticated(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(ti.State.VerifiedChains) > 0
}

// SyncStatus is one proxy's row of /debug/syncz.
type SyncStatus struct {
	Proxy string `json:"proxy"`
	// IstioVersion and ClusterID are what the proxy's node metadata said
	// (ISTIO_VERSION, CLUSTER_ID), under the keys internal/syncstatus reads
	// for `mesh proxy-status`.
	IstioVersion string                `json:"istioVersion,omitempty"`
	ClusterID    string                `json:"clusterID,omitempty"`
	Types        map[string]TypeStatus `json:"types"`
	// Candidates are the staged changes (Kind/namespace/name) the proxy
	// is served instead of their released versions (docs/rollout.md).
	Candidates []string `json:"candidates,omitempty"`
	// Fallback is why the proxy's pod is in sidecar fallback (its pod
	// condition's reason, docs/fallback.md), "" when it is not.
	Fallback string `json:"fallback,omitempty"`
	// Disconnected marks a row for a pod in fallback whose proxy is not
	// connected to this replica (Proxy is then POD.NAMESPACE).
	Disconnected bool `json:"disconnected,omitempty"`
}

// TypeStatus is what pilot sent a proxy for one xDS type and what came back.
type TypeStatus struct {
	Sent   string `json:"sent"`
	Acked  string `json:"acked"`
	Nonce  string `json:"nonce"`
	Nack   string `json:"nack"`
	Status string `json:"status"` // SYNCED, STALE, NOT SENT or NACK
}

// Sync status values.
const (
	StatusSynced  = "SYNCED"
	StatusStale   = "STALE"
	StatusNotSent = "NOT SENT"
	StatusNACK    = "NACK"
)

var syncTypes = map[string]string{
	"CDS": resourcev3.ClusterType, "LDS": resourcev3.ListenerType, "EDS": resourcev3.EndpointType,
	"RDS": resourcev3.RouteType, "ECDS": resourcev3.ExtensionConfigType, "SDS": resourcev3.SecretType,
}

// Syncz reports every connected proxy's sync state, sorted by proxy id.
func (s *Server) Syncz() []SyncStatus {
	s.mu.Lock()
	states := make([]*proxyState, 0, len(s.proxies))
	for _, ps := range s.proxies {
		states = append(states, ps)
	}
	s.mu.Unlock()
	out := make([]SyncStatus, 0, len(states))
	for _, ps := range states {
		row := SyncStatus{Proxy: ps.proxy.ID, IstioVersion: ps.proxy.Metadata.IstioVersion, ClusterID: ps.proxy.Metadata.ClusterID, Types: map[string]TypeStatus{}}
		ps.mu.Lock()
		if ps.variant != "" {
			row.Candidates = strings.Split(ps.variant, ",")
		}
		for short, url := range syncTypes {
			ts := TypeStatus{Status: StatusNotSent}
			if st := ps.status[url]; st != nil {
				ts = TypeStatus{Sent: st.sent, Acked: st.acked, Nonce: st.nonce, Nack: st.nack}
				switch {
				case st.nack != "":
					ts.Status = StatusNACK
				case st.sent == "":
					ts.Status = StatusNotSent
				case st.acked == st.sent:
					ts.Status = StatusSynced
				default:
					ts.Status = StatusStale
				}
			}
			row.Types[short] = ts
		}
		ps.mu.Unlock()
		out = append(out, row)
	}
	out = s.withFallbacks(out, states)
	sort.Slice(out, func(i, j int) bool { return out[i].Proxy < out[j].Proxy })
	return out
}

// withFallbacks marks the rows of proxies whose pod is in sidecar
// fallback, and adds a row for each such pod whose proxy is not connected
// (dead or hung): that is what an operator looks for when a proxy is gone.
func (s *Server) withFallbacks(rows []SyncStatus, states []*proxyState) []SyncStatus {
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc == nil {
		return rows
	}
	pods := pc.Snap.PodsInFallback()
	if len(pods) == 0 {
		return rows
	}
	connected := map[string]int{}
	for i, ps := range states {
		if ps.proxy.PodName != "" {
			connected[ps.proxy.PodName+"."+ps.proxy.Namespace] = i
		}
	}
	for _, p := range pods {
		name := p.Name + "." + p.Namespace
		if i, ok := connected[name]; ok {
			rows[i].Fallback = model.FallbackReason(p)
			continue
		}
		rows = append(rows, SyncStatus{Proxy: name, Types: map[string]TypeStatus{}, Fallback: model.FallbackReason(p), Disconnected: true})
	}
	return rows
}

// Resources returns what pilot would send the proxy with node id id: its
// current resources when connected, else freshly generated ones.
func (s *Server) Resources(id string) (*Resources, error) {
	s.mu.Lock()
	ps := s.proxies[id]
	pc := s.pc
	s.mu.Unlock()
	if ps != nil {
		ps.mu.Lock()
		r := ps.res
		ps.mu.Unlock()
		if r != nil {
			return r, nil
		}
	}
	if pc == nil {
		return nil, fmt.Errorf("no model yet")
	}
	p, err := model.ParseNodeID(id)
	if err != nil {
		return nil, err
	}
	return pc.Generate(p, s.Secrets)
}

// Refresh regenerates every connected proxy against the current model, for
// changes outside it (rotated certificates); only changed types are sent.
func (s *Server) Refresh() {
	s.mu.Lock()
	pc := s.pc
	all := make([]*proxyState, 0, len(s.proxies))
	for _, ps := range s.proxies {
		all = append(all, ps)
	}
	s.mu.Unlock()
	if pc != nil {
		s.regenerate(pc, all, time.Now())
	}
}
