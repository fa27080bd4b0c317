package istiostats

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/peermeta"
)

// TCP is a compiled istio.stats network filter: it records a TCP proxy's
// connections (opened when the upstream connection is made or fails,
// closed when both directions end) and bytes (as they are copied).
type TCP struct {
	r       *Recorder
	cfg     *config
	inbound bool
	cluster func(string) *cluster.Cluster
	series  sync.Map // tcpKey → *Conn
}

// NewTCP compiles the network filter's stats.PluginConfig; direction is the listener's ("inbound", "outbound", "").
func NewTCP(r *Recorder, a *anypb.Any, field, direction string, clusters func(string) *cluster.Cluster) (*TCP, error) {
	cfg, err := compile(a, field)
	if err != nil {
		return nil, err
	}
	return &TCP{r: r, cfg: cfg, inbound: direction == "inbound" && !cfg.gatewayReporter, cluster: clusters}, nil
}

type tcpKey struct {
	peer          *peermeta.Node
	peerPrincipal string
	cluster       string
	flags         string
}

// Conn are the counters of one kind of connection; nil counters are dropped metrics.
type Conn struct {
	opened, closed, sent, received prometheus.Counter
}

// Open counts a connection opened and returns its counters. peer is the
// other proxy's metadata (nil when none was exchanged), peerPrincipal the
// downstream's SPIFFE id (inbound), cluster the upstream cluster, flags
// Envoy's response flags ("-" for none).
func (t *TCP) Open(peer *peermeta.Node, peerPrincipal, clusterName, flags string) *Conn {
	k := tcpKey{peer: peer, peerPrincipal: peerPrincipal, cluster: clusterName, flags: flags}
	v, ok := t.series.Load(k)
	if !ok {
		v, _ = t.series.LoadOrStore(k, t.newConn(&k))
	}
	c := v.(*Conn)
	if c.opened != nil {
		c.opened.Inc()
	}
	return c
}

func (t *TCP) newConn(k *tcpKey) *Conn {
	var c *cluster.Cluster
	if t.cluster != nil && k.cluster != "" {
		c = t.cluster(k.cluster)
	}
	svc, _ := clusterService(c, k.cluster)
	std := t.r.standard(&exchange{inbound: t.inbound, peer: k.peer, peerPrincipal: k.peerPrincipal, mtls: k.peerPrincipal != "", svc: svc,
		proto: "tcp", flags: k.flags})
	var vals []string
	if len(t.cfg.exprs) > 0 {
		vals = evalAll(t.cfg, noAttrs{}) // connection attributes are not offered to TCP dimensions: each evaluates to "unknown"
	}
	mk := func(name string) prometheus.Counter {
		if t.cfg.metrics[name] == nil {
			return nil
		}
		return t.r.counter(name, t.cfg.labels(name, std, vals))
	}
	return &Conn{opened: mk(TCPOpened), closed: mk(TCPClosed), sent: mk(TCPSentBytes), received: mk(TCPReceivedBytes)}
}

type noAttrs struct{}

func (noAttrs) Field(string) (any, bool) { return nil, false }

// Sent counts n bytes sent downstream.
func (c *Conn) Sent(n int) {
	if c != nil && c.sent != nil {
		c.sent.Add(float64(n))
	}
}

// Received counts n bytes received from downstream.
func (c *Conn) Received(n int) {
	if c != nil && c.received != nil {
		c.received.Add(float64(n))
	}
}

// Close counts the connection closed.
func (c *Conn) Close() {
	if c != nil && c.closed != nil {
		c.closed.Inc()
	}
}
