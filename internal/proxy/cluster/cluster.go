// Package cluster holds upstream clusters: their hosts (static, STRICT_DNS, EDS,
// ORIGINAL_DST), load balancing, circuit breakers, outlier detection, active
// health checks and the connection pools requests travel over.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/proxy/protofields"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

type policy int

const (
	policyRoundRobin policy = iota
	policyLeastRequest
	policyRandom
	policyRingHash
)

type kind int

const (
	kindStatic kind = iota
	kindStrictDNS
	kindEDS
	kindOriginalDst
)

// Errors a caller maps to Envoy's response flags.
var (
	ErrNoHealthyUpstream = errors.New("no healthy upstream")
	ErrOverflow          = errors.New("upstream overflow")
)

// Cluster is one upstream cluster, compiled from an envoy.config.cluster.v3.Cluster.
type Cluster struct {
	Name           string
	Proto          *clusterv3.Cluster
	EDSServiceName string // the ClusterLoadAssignment name to subscribe to, for EDS clusters

	kind             kind
	policy           policy
	ringSize         int
	panicPct         float64 // healthy_panic_threshold: below it, all hosts take traffic
	localityWeighted bool
	connectTimeout   time.Duration

	hosts atomic.Pointer[hostSet]
	rr    atomic.Uint64

	def       *socket       // transport_socket (plaintext when absent)
	matches   []socketMatch // transport_socket_matches, in order
	bare      *socket       // the socket for hosts without metadata
	downProto bool          // pick HTTP/1 or HTTP/2 to match the downstream request

	limits  limits
	outlier *outlier
	hc      *healthChecker

	activeRq, activeRetries, activeCx atomic.Int64

	h1       atomic.Pointer[h1Pool] // the lean path's idle connections, made on first use
	poolIdle time.Duration          // idle_timeout of upstream connections
	leanH1   bool                   // every socket speaks HTTP/1.1 (see LeanH1)
	// maxRqPerConn is common_http_protocol_options.max_requests_per_connection
	// (0: unlimited), honoured by the lean path's pool.
	maxRqPerConn uint32

	Stats Stats

	stopOnce   sync.Once
	stop       chan struct{}
	dnsNames   []dnsTarget
	dnsRate    time.Duration
	dnsNetwork string // "ip", "ip4" or "ip6": dns_lookup_family
}

type limits struct {
	conns, pending, requests, retries int64
	// Retry budget: retries may be budgetPct of active requests, never fewer than budgetMin.
	budget    bool
	budgetPct float64
	budgetMin int64
}

type dnsTarget struct {
	host, port                string
	weight, priority, lweight uint32
	locality                  string
	sock                      *socket
}

// Options are what compiling a cluster needs from the rest of the proxy.
type Options struct {
	Secrets meshtls.Secrets
}

// Compile builds a Cluster; a field the proxy cannot honour is an error naming it.
func Compile(pc *clusterv3.Cluster, opts Options) (*Cluster, error) {
	f := "cluster " + strconv.Quote(pc.GetName())
	if err := pc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if err := checkClusterFields(pc, f); err != nil {
		return nil, err
	}
	c := &Cluster{
		Name:           pc.GetName(),
		Proto:          pc,
		stop:           make(chan struct{}),
		connectTimeout: 5 * time.Second,
		ringSize:       1024,
		limits:         limits{conns: 1024, pending: 1024, requests: 1024, retries: 3},
	}
	if d := pc.GetConnectTimeout(); d != nil {
		c.connectTimeout = d.AsDuration()
	}
	switch pc.GetClusterDiscoveryType().(type) {
	case nil, *clusterv3.Cluster_Type:
	default:
		return nil, fmt.Errorf("%s: cluster_type (custom cluster extensions) is not supported", f)
	}
	switch pc.GetType() {
	case clusterv3.Cluster_STATIC:
		c.kind = kindStatic
	case clusterv3.Cluster_STRICT_DNS:
		c.kind = kindStrictDNS
	case clusterv3.Cluster_EDS:
		c.kind = kindEDS
		if cfg := pc.GetEdsClusterConfig().GetEdsConfig(); cfg != nil && cfg.GetAds() == nil {
			return nil, fmt.Errorf("%s: eds_cluster_config.eds_config: only ads is supported", f)
		}
		c.EDSServiceName = pc.GetEdsClusterConfig().GetServiceName()
		if c.EDSServiceName == "" {
			c.EDSServiceName = pc.GetName()
		}
	case clusterv3.Cluster_ORIGINAL_DST:
		c.kind = kindOriginalDst
	default:
		return nil, fmt.Errorf("%s: type %s is not supported (supported: STATIC, STRICT_DNS, EDS, ORIGINAL_DST)", f, pc.GetType())
	}
	switch pc.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		c.policy = policyRoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		c.policy = policyLeastRequest
	case clusterv3.Cluster_RANDOM:
		c.policy = policyRandom
	case clusterv3.Cluster_RING_HASH:
		c.policy = policyRingHash
		if m := pc.GetRingHashLbConfig().GetMinimumRingSize(); m != nil {
			c.ringSize = int(min(m.GetValue(), 1<<20))
		}
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if c.kind != kindOriginalDst {
			return nil, fmt.Errorf("%s: lb_policy CLUSTER_PROVIDED is only valid with type ORIGINAL_DST", f)
		}
	default:
		return nil, fmt.Errorf("%s: lb_policy %s is not supported (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH)", f, pc.GetLbPolicy())
	}
	if pc.GetLoadBalancingPolicy() != nil {
		return nil, fmt.Errorf("%s: load_balancing_policy (typed LB extensions) is not supported; use lb_policy", f)
	}
	cc := pc.GetCommonLbConfig()
	c.panicPct = 50
	if t := cc.GetHealthyPanicThreshold(); t != nil {
		c.panicPct = t.GetValue()
	}
	c.localityWeighted = cc.GetLocalityWeightedLbConfig() != nil
	if cc.GetZoneAwareLbConfig() != nil {
		return nil, fmt.Errorf("%s: common_lb_config.zone_aware_lb_config is not supported; use locality_weighted_lb_config", f)
	}
	if err := c.compileBreakers(pc.GetCircuitBreakers(), f); err != nil {
		return nil, err
	}
	if od := pc.GetOutlierDetection(); od != nil {
		o, err := compileOutlier(od, f)
		if err != nil {
			return nil, err
		}
		c.outlier = o
	}
	if err := c.compileTransport(pc, opts, f); err != nil {
		return nil, err
	}
	if hcs := pc.GetHealthChecks(); len(hcs) > 0 {
		hc, err := compileHealthCheck(c, hcs, f)
		if err != nil {
			return nil, err
		}
		c.hc = hc
	}
	switch c.kind {
	case kindStatic:
		if err := c.SetEndpoints(pc.GetLoadAssignment()); err != nil {
			return nil, fmt.Errorf("%s: load_assignment: %w", f, err)
		}
	case kindStrictDNS:
		if err := c.compileDNS(pc, f); err != nil {
			return nil, err
		}
	case kindEDS:
		c.hosts.Store(newHostSet(nil, false, 0))
	}
	return c, nil
}

func (c *Cluster) compileBreakers(cb *clusterv3.CircuitBreakers, f string) error {
	if cb != nil {
		if err := protofields.Check(cb, f+".circuit_breakers", "thresholds"); err != nil {
			return err
		}
	}
	for i, t := range cb.GetThresholds() {
		if err := protofields.Check(t, fmt.Sprintf("%s.circuit_breakers.thresholds[%d]", f, i), "priority", "max_connections",
			"max_pending_requests", "max_requests", "max_retries", "retry_budget"); err != nil {
			return err
		}
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			return fmt.Errorf("%s: circuit_breakers.thresholds[%d].priority %s is not supported (routes run at DEFAULT)", f, i, t.GetPriority())
		}
		if v := t.GetMaxConnections(); v != nil {
			c.limits.conns = int64(v.GetValue())
		}
		if v := t.GetMaxPendingRequests(); v != nil {
			c.limits.pending = int64(v.GetValue())
		}
		if v := t.GetMaxRequests(); v != nil {
			c.limits.requests = int64(v.GetValue())
		}
		if v := t.GetMaxRetries(); v != nil {
			c.limits.retries = int64(v.GetValue())
		}
		if rb := t.GetRetryBudget(); rb != nil {
			c.limits.budget, c.limits.budgetPct, c.limits.budgetMin = true, 20, 3
			if p := rb.GetBudgetPercent(); p != nil {
				c.limits.budgetPct = p.GetValue()
			}
			if m := rb.GetMinRetryConcurrency(); m != nil {
				c.limits.budgetMin = int64(m.GetValue())
			}
		}
	}
	return nil
}

func (c *Cluster) compileTransport(pc *clusterv3.Cluster, opts Options, f string) error {
	h2 := pc.GetHttp2ProtocolOptions() != nil //nolint:staticcheck // still sent by control planes
	idle := time.Hour
	if a, ok := pc.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		po := &httpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(po); err != nil {
			return fmt.Errorf("%s: typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions]: %w", f, err)
		}
		switch p := po.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			h2 = p.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil
			if p.ExplicitHttpConfig.GetHttp3ProtocolOptions() != nil {
				return fmt.Errorf("%s: typed_extension_protocol_options: explicit_http_config.http3_protocol_options is not supported", f)
			}
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			c.downProto = true
		case *httpv3.HttpProtocolOptions_AutoConfig:
			// With TLS, ALPN negotiates; in plaintext Envoy's auto config means HTTP/1.1.
		}
		if d := po.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil && d.AsDuration() > 0 {
			idle = d.AsDuration()
		}
		c.maxRqPerConn = po.GetCommonHttpProtocolOptions().GetMaxRequestsPerConnection().GetValue()
	}
	for k := range pc.GetTypedExtensionProtocolOptions() {
		if k != "envoy.extensions.upstreams.http.v3.HttpProtocolOptions" {
			return fmt.Errorf("%s: typed_extension_protocol_options[%q] is not supported", f, k)
		}
	}
	return c.compileSockets(pc, opts, poolOptions{h2: h2, idle: idle}, f)
}

// dialer counts connections so max_connections and /stats see them.
func (c *Cluster) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		c.Stats.CxTotal.Add(1)
		if err != nil {
			c.Stats.CxConnectFail.Add(1)
			return nil, err
		}
		c.activeCx.Add(1)
		return &countedConn{Conn: conn, c: c}, nil
	}
}

type countedConn struct {
	net.Conn
	c    *Cluster
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() { cc.c.activeCx.Add(-1) })
	return cc.Conn.Close()
}

// SetEndpoints replaces the cluster's hosts from a ClusterLoadAssignment.
func (c *Cluster) SetEndpoints(cla *endpointv3.ClusterLoadAssignment) error {
	var hosts []*Host
	for li, le := range cla.GetEndpoints() {
		loc := le.GetLocality()
		locName := loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		lw := uint32(1)
		if w := le.GetLoadBalancingWeight(); w != nil {
			lw = w.GetValue()
		}
		for ei, lbe := range le.GetLbEndpoints() {
			ep := lbe.GetEndpoint()
			if ep == nil {
				return fmt.Errorf("endpoints[%d].lb_endpoints[%d]: endpoint is required (named endpoints are not supported)", li, ei)
			}
			sa := ep.GetAddress().GetSocketAddress()
			if sa == nil {
				return fmt.Errorf("endpoints[%d].lb_endpoints[%d].endpoint.address: only socket_address is supported", li, ei)
			}
			if sa.GetProtocol() != corev3.SocketAddress_TCP {
				return fmt.Errorf("endpoints[%d].lb_endpoints[%d].endpoint.address.socket_address.protocol: only TCP is supported", li, ei)
			}
			w := uint32(1)
			if lw := lbe.GetLoadBalancingWeight(); lw != nil {
				w = lw.GetValue()
			}
			hs := lbe.GetHealthStatus()
			hosts = append(hosts, &Host{
				Addr:           net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
				Hostname:       lbe.GetEndpoint().GetHostname(),
				Weight:         w,
				Priority:       le.GetPriority(),
				Locality:       locName,
				LocalityWeight: lw,
				edsHealthy:     hs == corev3.HealthStatus_UNKNOWN || hs == corev3.HealthStatus_HEALTHY || hs == corev3.HealthStatus_DEGRADED,
				sock:           c.endpointSocket(le, lbe),
			})
		}
	}
	c.setHosts(hosts)
	return nil
}

// setHosts installs a new host set, carrying health state over for hosts that stay.
func (c *Cluster) setHosts(hosts []*Host) {
	old := map[string]*Host{}
	if prev := c.hosts.Load(); prev != nil {
		for _, h := range prev.hosts {
			old[h.Addr] = h
		}
	}
	for _, h := range hosts {
		if o, ok := old[h.Addr]; ok {
			h.hcFailed.Store(o.hcFailed.Load())
			h.ejectedUntil.Store(o.ejectedUntil.Load())
			h.ejections.Store(o.ejections.Load())
			h.rqTotal.Store(o.rqTotal.Load())
			h.rqError.Store(o.rqError.Load())
		} else if c.hc != nil {
			h.hcFailed.Store(true) // Envoy waits for a first passing check
		}
	}
	c.hosts.Store(newHostSet(hosts, c.policy == policyRingHash, c.ringSize))
	if c.hc != nil {
		c.hc.kick()
	}
}

// Hosts returns the current hosts.
func (c *Cluster) Hosts() []*Host {
	if hs := c.hosts.Load(); hs != nil {
		return hs.hosts
	}
	return nil
}

// Start begins the cluster's background work: DNS refresh and health checks.
func (c *Cluster) Start() {
	if c.kind == kindStrictDNS {
		go c.dnsLoop()
	}
	if c.hc != nil {
		go c.hc.run()
	}
}

// Close stops background work and idle connections.
func (c *Cluster) Close() {
	c.stopOnce.Do(func() {
		close(c.stop)
		c.closeH1()
		for _, s := range c.sockets() {
			s.closeIdle()
		}
	})
}

// SameConfig reports whether pc would compile to this cluster, so an update
// that resends an unchanged cluster keeps its pools and health state.
func (c *Cluster) SameConfig(pc *clusterv3.Cluster) bool { return proto.Equal(c.Proto, pc) }

// Acquire reserves a request slot under the circuit breakers; release must be called.
func (c *Cluster) Acquire() (ok bool) {
	n := c.activeRq.Add(1)
	if n > c.limits.requests {
		c.activeRq.Add(-1)
		c.Stats.RqOverflow.Add(1)
		return false
	}
	// Requests beyond the connection cap wait in the pool: those are Envoy's pending requests.
	if n > c.limits.conns+c.limits.pending {
		c.activeRq.Add(-1)
		c.Stats.RqPendingOverflow.Add(1)
		return false
	}
	return true
}

// Release frees a slot taken by Acquire.
func (c *Cluster) Release() { c.activeRq.Add(-1) }

// AcquireRetry reserves a retry under max_retries.
func (c *Cluster) AcquireRetry() bool {
	limit := c.limits.retries
	if c.limits.budget {
		// A budget replaces max_retries: it scales with the traffic in flight.
		limit = max(c.limits.budgetMin, int64(float64(c.activeRq.Load())*c.limits.budgetPct/100))
	}
	if c.activeRetries.Add(1) > limit {
		c.activeRetries.Add(-1)
		c.Stats.RqRetryOverflow.Add(1)
		return false
	}
	c.Stats.RqRetry.Add(1)
	return true
}

// ReleaseRetry frees a retry slot.
func (c *Cluster) ReleaseRetry() { c.activeRetries.Add(-1) }

// Pick chooses an upstream host; hash is honoured by ring hash when hasHash is set.
// For ORIGINAL_DST clusters origDst is the address the client meant.
func (c *Cluster) Pick(hash uint64, hasHash bool, avoid *Host, origDst string) (*Host, error) {
	if c.kind == kindOriginalDst {
		if origDst == "" {
			return nil, ErrNoHealthyUpstream
		}
		return &Host{Addr: origDst, Weight: 1, edsHealthy: true, sock: c.bare}, nil
	}
	h := c.pick(hash, hasHash, avoid)
	if h == nil {
		c.Stats.NoHealthyUpstream.Add(1)
		return nil, ErrNoHealthyUpstream
	}
	return h, nil
}

// RoundTrip sends req to host h over the cluster's pool and records the outcome.
func (c *Cluster) RoundTrip(req *http.Request, h *Host) (*http.Response, error) {
	req.URL.Host = h.Addr
	s := c.sockOf(h)
	if s.tls != nil {
		req.URL.Scheme = "https"
	} else {
		req.URL.Scheme = "http"
	}
	var t *http.Transport
	if c.downProto && req.ProtoMajor == 2 {
		t = s.h2()
	} else {
		t = s.h1()
	}
	h.active.Add(1)
	c.Stats.RqTotal.Add(1)
	c.Stats.RqActive.Add(1)
	resp, err := t.RoundTrip(req)
	h.active.Add(-1)
	c.Stats.RqActive.Add(-1)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	c.Record(h, status, err)
	return resp, err
}

// Record feeds one result into stats and outlier detection.
func (c *Cluster) Record(h *Host, status int, err error) {
	h.rqTotal.Add(1)
	failed := err != nil || status >= 500
	switch {
	case err != nil:
		c.Stats.RqError.Add(1)
	case status >= 500:
		c.Stats.Rq5xx.Add(1)
	case status >= 400:
		c.Stats.Rq4xx.Add(1)
	case status >= 300:
		c.Stats.Rq3xx.Add(1)
	default:
		c.Stats.Rq2xx.Add(1)
	}
	if failed {
		h.rqError.Add(1)
	}
	if c.outlier != nil {
		c.outlier.record(c, h, status, err)
	}
}

// DialTCP opens a raw (or TLS, when h's transport socket says so) connection to h.
func (c *Cluster) DialTCP(ctx context.Context, h *Host) (net.Conn, error) {
	return c.dial(ctx, h, false)
}

// DialGRPC is DialTCP for a gRPC client of the proxy's own (ext_authz,
// trace export): over TLS it offers h2 by ALPN, as the cluster's HTTP/2
// pools do, so the peer reads the connection as HTTP/2. A mesh context
// offers only Istio's protocols, and a sidecar's inbound listener reads a
// connection with no HTTP protocol agreed as HTTP/1.1.
func (c *Cluster) DialGRPC(ctx context.Context, h *Host) (net.Conn, error) {
	return c.dial(ctx, h, true)
}

func (c *Cluster) dial(ctx context.Context, h *Host, h2 bool) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.connectTimeout}
	conn, err := c.dialer(d)(ctx, "tcp", h.Addr)
	if err != nil {
		c.Record(h, 0, err)
		return nil, err
	}
	if s := c.sockOf(h); s.tls != nil {
		cfg := s.tls
		if h2 {
			cfg = offerH2(cfg)
		}
		tc := meshtls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			c.Record(h, 0, err)
			return nil, err
		}
		return tc, nil
	}
	return conn, nil
}

// ActiveConnections returns the cluster's open upstream connections.
func (c *Cluster) ActiveConnections() int64 { return c.activeCx.Load() }
