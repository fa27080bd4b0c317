package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/nds"
	"mesh.dev/mesh/internal/proxy/admin"
	"mesh.dev/mesh/internal/proxy/appprobe"
	"mesh.dev/mesh/internal/proxy/bootstrap"
	"mesh.dev/mesh/internal/proxy/capture"
	"mesh.dev/mesh/internal/proxy/config"
	"mesh.dev/mesh/internal/proxy/dnsproxy"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/identity"
	"mesh.dev/mesh/internal/proxy/listener"
	"mesh.dev/mesh/internal/proxy/logging"
	"mesh.dev/mesh/internal/proxy/metricsmerge"
	"mesh.dev/mesh/internal/proxy/peermeta"
	"mesh.dev/mesh/internal/proxy/runtime"
	"mesh.dev/mesh/internal/proxy/xdsclient"
)

// Options configure a Proxy.
type Options struct {
	Bootstrap  *bootstrapv3.Bootstrap // optional; static resources and node
	XDSAddress string                 // host:port of the ADS server; overrides the bootstrap's ads_config
	Delta      bool                   // use incremental xDS
	XDSBackoff [2]time.Duration       // min and max reconnect backoff (zero: 500ms and 30s)
	NodeID     string
	Cluster    string // node.cluster, Istio's service cluster (overrides the bootstrap's)
	Zone       string // node.locality.zone (overrides the bootstrap's)
	// ValidateOnly compiles the bootstrap without binding listeners (--mode validate).
	ValidateOnly  bool
	AdminAddress  string // "" disables; Envoy's default is 127.0.0.1:15000
	HealthAddress string // readiness (/healthz/ready), e.g. 0.0.0.0:15021
	StatsAddress  string // the agent's status port, e.g. 0.0.0.0:15020: merged metrics, app probes, quitquitquit
	// PrometheusAddress serves the proxy's own metrics at /stats/prometheus
	// (Envoy's stats and Istio's standard metrics), Istio's 15090; "" disables.
	PrometheusAddress string
	// AppMetrics is where the app serves its metrics (the pod's
	// prometheus.io annotations before injection); the status port's
	// /stats/prometheus merges them with the proxy's. Nil: none.
	AppMetrics *metricsmerge.Scrape
	// AppProbers are the app's probes the injector moved to the status port
	// (StatsAddress, Istio's 15020): /app-health/<container>/<kind> runs each
	// against AppProbeHost (the pod IP, or localhost).
	AppProbers   appprobe.Probers
	AppProbeHost string
	Workload     Workload
	// Peer is this proxy's node metadata as told to peers (Istio's metadata
	// exchange); nil: the bootstrap node's metadata, the node id and Workload.
	Peer *peermeta.Node
	// NodeMetadata is what the xDS node's metadata says beside the
	// bootstrap's, as Istio's agent writes it from ISTIO_META_* and
	// ISTIO_METAJSON_* (NodeMetadataFromEnv); the bootstrap's keys win.
	NodeMetadata map[string]*structpb.Value
	Level        *slog.LevelVar // optional: kept in step with /logging?level= for an embedder's own slog handler
	DrainTimeout time.Duration
	OriginalDst  func(net.Conn) (netipAddrPort, bool)
	// Identity, when set, keeps the workload certificate from pilot's CA; it
	// stands in for the "default" and "ROOTCA" SDS secrets pilot has not sent.
	Identity *identity.Manager
	// XDSMTLS connects to the ADS server over TLS with Identity's certificate (pilot's 15012).
	XDSMTLS bool
	// HTTPFilters are HTTP filters an embedder adds to the ones mesh-proxy ships.
	HTTPFilters []httpfilter.Factory
	// NoLean serves all HTTP on the net/http path (tests compare it with the lean HTTP/1.1 path).
	NoLean bool
	// DNS, when set, runs the DNS proxy (Istio's ISTIO_META_DNS_CAPTURE):
	// a DNS server on DNSAddress (default dnsproxy.Address) answering from
	// the name table pilot sends over ADS, which the proxy then asks for.
	DNS        *dnsproxy.Options
	DNSAddress string
}

// Proxy is a running data plane.
type Proxy struct {
	opts      Options
	Store     *config.Store
	Listeners *listener.Manager
	Metrics   *Metrics
	XDS       *xdsclient.Client
	node      *corev3.Node
	started   time.Time
	draining  atomic.Bool
	initDone  atomic.Bool
	// listenersDone and namesDone: the first listener update and the
	// first name table were applied (readiness waits for both with DNS).
	listenersDone, namesDone atomic.Bool
	servers                  []*http.Server
	quit                     chan struct{}
	adminAddr                string
	grpcConn                 *grpc.ClientConn
	keepStat                 func(string) bool // stats_config.stats_matcher
	dns                      *dnsproxy.Server  // nil: no DNS proxying
}

// New assembles a proxy; nothing listens until Start.
func New(opts Options) (*Proxy, error) {
	p := &Proxy{opts: opts, started: time.Now(), quit: make(chan struct{})}
	if opts.DrainTimeout == 0 {
		p.opts.DrainTimeout = 20 * time.Second
	}
	p.node = &corev3.Node{Id: opts.NodeID, Cluster: opts.Cluster, UserAgentName: "mesh-proxy"}
	if b := opts.Bootstrap; b != nil && b.GetNode() != nil {
		// Envoy's --service-node, --service-cluster and --service-zone override the bootstrap's node.
		p.node = proto.Clone(b.GetNode()).(*corev3.Node)
		if opts.NodeID != "" {
			p.node.Id = opts.NodeID
		}
		if opts.Cluster != "" {
			p.node.Cluster = opts.Cluster
		}
		b.Node = p.node
	}
	if opts.Zone != "" {
		if p.node.Locality == nil {
			p.node.Locality = &corev3.Locality{}
		}
		p.node.Locality.Zone = opts.Zone
	}
	if p.node.GetId() == "" {
		return nil, errors.New("node id is required (flag --node-id, POD_NAME/POD_NAMESPACE/INSTANCE_IP, or node.id in the bootstrap)")
	}
	if p.opts.OriginalDst == nil {
		p.opts.OriginalDst = capture.OriginalDst
	}
	self := selfNode(opts, p.node)
	p.node.Metadata = xdsNodeMetadata(p.node.GetMetadata(), opts.NodeMetadata, self)
	p.Metrics = NewMetrics(self)
	rt, err := runtime.FromBootstrap(opts.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	keep, notDone, err := bootstrap.StatsFilter(opts.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	p.keepStat = keep
	for _, f := range notDone {
		// Istio's bootstraps set these; refusing them would refuse every Istio bootstrap, so they are named instead.
		configLog.Warn("bootstrap setting not carried out: the Prometheus tags of mesh-proxy's stats are a fixed set", "field", f)
	}
	filters := httpFilters(p.Metrics.Istio, opts.HTTPFilters...)
	reconciler := &p.Listeners
	if opts.ValidateOnly {
		reconciler = new(*listener.Manager) // compile everything, bind nothing
	}
	p.Store = newStore(reconciler, filters)
	if opts.Identity != nil {
		p.Store.SetSecretFallback(opts.Identity.Secret)
	}
	p.Listeners = listener.NewManager(&listener.Env{Store: p.Store, Stats: p.Metrics.Istio, OriginalDst: p.opts.OriginalDst,
		Filters: filters, Runtime: rt, NoLean: opts.NoLean, ServiceName: localServiceName(p.node, self)})
	p.Store.SetCompiler(config.ListenerType, p.Listeners.Compiler())
	if opts.DNS != nil {
		p.dns = dnsproxy.New(*opts.DNS)
		p.Store.SetCompiler(nds.TypeURL, func(msg proto.Message, _ *config.Resource, _ *config.Snapshot) (any, error) {
			t, err := nds.FromMessage(msg)
			if err != nil {
				return nil, fmt.Errorf("name table: %w", err)
			}
			return t, nil
		})
		p.Store.OnCommit(func(old, next *config.Snapshot) {
			if r := next.Get(nds.TypeURL, ""); r != nil && r != old.Get(nds.TypeURL, "") {
				p.dns.SetTable(r.Compiled.(nds.Table))
			}
		})
	}
	if b := opts.Bootstrap; b != nil {
		p.Store.SetBootstrap(b)
		if err := p.loadStatic(b); err != nil {
			return nil, err
		}
	} else {
		// Envoy always has a bootstrap; tools reading /config_dump expect its node there.
		p.Store.SetBootstrap(&bootstrapv3.Bootstrap{Node: p.node})
	}
	return p, nil
}

func (p *Proxy) loadStatic(b *bootstrapv3.Bootstrap) error {
	sr := b.GetStaticResources()
	// The store keeps the bootstrap's own messages: the bootstrap stays
	// whole for /config_dump, and a second decoded copy of every static
	// resource would double what a large static config holds.
	steps := []struct {
		t    string
		msgs []proto.Message
	}{
		{config.SecretType, asMessages(sr.GetSecrets())},
		{config.ClusterType, asMessages(sr.GetClusters())},
		{config.ListenerType, asMessages(sr.GetListeners())},
	}
	for _, s := range steps {
		if len(s.msgs) == 0 {
			continue
		}
		if err := p.Store.Apply(config.Update{TypeURL: s.t, Messages: s.msgs, Static: true}); err != nil {
			return fmt.Errorf("bootstrap static_resources: %w", err)
		}
	}
	return nil
}

func asMessages[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// Apply implements xdsclient.Handler.
func (p *Proxy) Apply(u config.Update) error {
	err := p.Store.Apply(u)
	if err == nil && u.TypeURL == config.ListenerType {
		p.listenersDone.Store(true)
	}
	if err == nil && u.TypeURL == nds.TypeURL {
		p.namesDone.Store(true)
	}
	// Ready once the listeners came, and, when the proxy answers the
	// pod's DNS, its name table too: an app started at readiness (native
	// sidecars, holdApplicationUntilProxyStarts) resolves mesh names at once.
	if p.listenersDone.Load() && (p.dns == nil || p.namesDone.Load()) {
		p.initDone.Store(true)
	}
	return err
}

// Names implements xdsclient.Handler.
func (p *Proxy) Names(typeURL string) []string { return names(p.Store.Load(), typeURL) }

// State is the Envoy server state.
func (p *Proxy) State() adminv3.ServerInfo_State {
	switch {
	case p.draining.Load():
		return adminv3.ServerInfo_DRAINING
	case !p.initDone.Load():
		return adminv3.ServerInfo_PRE_INITIALIZING
	}
	return adminv3.ServerInfo_LIVE
}

// AdminAddr returns the bound admin address.
func (p *Proxy) AdminAddr() string { return p.adminAddr }

// Quit is closed when /quitquitquit asks the proxy to exit.
func (p *Proxy) Quit() <-chan struct{} { return p.quit }

// Start binds the admin, health and metrics ports and connects to the control plane.
func (p *Proxy) Start(ctx context.Context) error {
	xdsAddr := p.opts.XDSAddress
	if xdsAddr == "" {
		xdsAddr = adsFromBootstrap(p.opts.Bootstrap)
	}
	if xdsAddr == "" {
		p.initDone.Store(true) // static config only
	}
	if err := p.Listeners.Reconcile(p.Store.Load()); err != nil {
		return err
	}
	a := &admin.Server{Store: p.Store, Listeners: p.Listeners, Node: p.node, Started: p.started, State: p.State, Level: p.opts.Level, Loggers: logging.Default,
		Quit: func() { p.closeQuit() }, Gatherer: p.Metrics.Registry, Keep: p.keepStat, ProfilePath: p.opts.Bootstrap.GetAdmin().GetProfilePath()}
	if p.opts.AdminAddress != "" {
		addr, err := p.serve(p.opts.AdminAddress, a.Handler())
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		p.adminAddr = addr
	}
	if p.opts.HealthAddress != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, r *http.Request) {
			if st := p.State(); st != adminv3.ServerInfo_LIVE {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, st.String()+"\n")
				return
			}
			io.WriteString(w, "LIVE\n")
		})
		if _, err := p.serve(p.opts.HealthAddress, mux); err != nil {
			return fmt.Errorf("health: %w", err)
		}
	}
	if p.opts.PrometheusAddress != "" {
		mux := http.NewServeMux()
		mux.Handle("/stats/prometheus", a.PrometheusHandler())
		if _, err := p.serve(p.opts.PrometheusAddress, mux); err != nil {
			return fmt.Errorf("prometheus: %w", err)
		}
	}
	if p.opts.StatsAddress != "" {
		mux := http.NewServeMux()
		// As Istio's agent: the proxy's metrics with the app's merged in.
		mux.Handle("/stats/prometheus", metricsmerge.New(a, p.opts.AppMetrics, "localhost", logging.Default.Logger("admin")))
		mux.Handle("/metrics", a.PrometheusHandler())
		mux.Handle(appprobe.PathPrefix, &appprobe.Server{Probers: p.opts.AppProbers, Host: p.opts.AppProbeHost, Log: logging.Default.Logger("health_checker")})
		mux.HandleFunc("/quitquitquit", p.statusQuit)
		if _, err := p.serve(p.opts.StatsAddress, mux); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if p.opts.Identity != nil {
		go p.opts.Identity.Run(ctx)
	}
	if p.dns != nil {
		addr := p.opts.DNSAddress
		if addr == "" {
			addr = dnsproxy.Address
		}
		if err := p.dns.Start(addr); err != nil {
			return err
		}
	}
	if xdsAddr != "" {
		creds := insecure.NewCredentials()
		if p.opts.XDSMTLS {
			if p.opts.Identity == nil {
				return errors.New("xDS over mTLS needs the workload identity (CA address)")
			}
			creds = credentials.NewTLS(p.opts.Identity.ClientTLS())
		}
		conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(creds),
			grpc.WithConnectParams(xdsclient.ConnectParams(p.opts.XDSBackoff[0], p.opts.XDSBackoff[1])))
		if err != nil {
			return fmt.Errorf("xds %s: %w", xdsAddr, err)
		}
		p.grpcConn = conn
		p.XDS = &xdsclient.Client{Conn: conn, Node: p.node, Handler: p, Delta: p.opts.Delta,
			MinBackoff: p.opts.XDSBackoff[0], MaxBackoff: p.opts.XDSBackoff[1]}
		if p.dns != nil {
			p.XDS.Types = []string{nds.TypeURL}
		}
		go func() {
			if p.opts.XDSMTLS {
				// A connection made before the certificate arrives would carry none, and pilot serves no xDS to it.
				select {
				case <-p.opts.Identity.Ready():
				case <-ctx.Done():
					return
				}
			}
			p.XDS.Run(ctx)
		}()
	}
	return nil
}

// statusQuit is the agent's POST /quitquitquit on the status port, as
// Istio's: a Job's container calls it when done so that a classic sidecar
// exits and the pod completes. Only the pod itself may (loopback), since
// the status port is reachable from the pod network for probes.
func (p *Proxy) statusQuit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		http.Error(w, "only from inside the pod (localhost)", http.StatusForbidden)
		return
	}
	io.WriteString(w, "OK\n")
	p.closeQuit()
}

func (p *Proxy) closeQuit() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
}

func (p *Proxy) serve(addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	p.servers = append(p.servers, srv)
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Drain stops taking new connections, lets in-flight requests finish, then stops everything.
func (p *Proxy) Drain(ctx context.Context) {
	p.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, p.opts.DrainTimeout)
	defer cancel()
	p.Listeners.Drain(ctx)
	p.Close()
}

// Close stops the side servers and the xDS connection.
func (p *Proxy) Close() {
	for _, s := range p.servers {
		s.Close()
	}
	if p.grpcConn != nil {
		p.grpcConn.Close()
	}
	if p.dns != nil {
		_ = p.dns.Close()
	}
	for _, r := range p.Store.Load().List(config.ClusterType) {
		if c, ok := r.Compiled.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// adsFromBootstrap returns the address of the ADS cluster named in dynamic_resources.ads_config.
func adsFromBootstrap(b *bootstrapv3.Bootstrap) string {
	if b == nil {
		return ""
	}
	ads := b.GetDynamicResources().GetAdsConfig()
	for _, gs := range ads.GetGrpcServices() {
		name := gs.GetEnvoyGrpc().GetClusterName()
		for _, c := range b.GetStaticResources().GetClusters() {
			if c.GetName() != name {
				continue
			}
			for _, le := range c.GetLoadAssignment().GetEndpoints() {
				for _, lbe := range le.GetLbEndpoints() {
					sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
					if sa != nil {
						return net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue()))
					}
				}
			}
		}
		if g := gs.GetGoogleGrpc(); g != nil {
			return g.GetTargetUri()
		}
	}
	return ""
}

// Warming implements xdsclient.Handler: true while an EDS cluster has no endpoint assignment yet.
func (p *Proxy) Warming() bool {
	s := p.Store.Load()
	for _, n := range names(s, config.EndpointType) {
		if s.Get(config.EndpointType, n) == nil {
			return true
		}
	}
	return false
}

// localServiceName is what Envoy calls the local cluster name, the service
// Zipkin spans are reported under: the node's cluster (--service-cluster,
// the bootstrap's node.cluster), else <canonical service>.<namespace>, as
// Istio's agent sets it.
func localServiceName(node *corev3.Node, self *peermeta.Node) string {
	if c := node.GetCluster(); c != "" {
		return c
	}
	if cs := self.CanonicalService(); cs != "" && self.Namespace != "" {
		return cs + "." + self.Namespace
	}
	return ""
}
