package cluster

import (
	"sync/atomic"
	"time"
)

// Host is one upstream endpoint with the runtime state load balancing reads.
type Host struct {
	Addr           string // host:port
	Hostname       string // the endpoint's hostname (EDS/STATIC) or DNS name (STRICT_DNS); auto_host_rewrite sends it as Host
	Weight         uint32
	Priority       uint32
	Locality       string
	LocalityWeight uint32
	edsHealthy     bool
	sock           *socket // chosen by transport_socket_matches; nil means the cluster's default

	active       atomic.Int64 // requests in flight, for least request
	hcFailed     atomic.Bool  // set by active health checking
	ejectedUntil atomic.Int64 // unix nanos; outlier detection
	consec5xx    atomic.Int32
	ejections    atomic.Int32
	rqTotal      atomic.Uint64
	rqError      atomic.Uint64
}

// Healthy reports whether the host may take traffic now.
func (h *Host) Healthy(now int64) bool {
	return h.edsHealthy && !h.hcFailed.Load() && h.ejectedUntil.Load() <= now
}

// HealthFlags renders the host's state the way Envoy's /clusters does.
func (h *Host) HealthFlags() string {
	flags := ""
	add := func(f string) {
		if flags != "" {
			flags += "|"
		}
		flags += f
	}
	if !h.edsHealthy {
		add("/eds_status_unhealthy")
	}
	if h.hcFailed.Load() {
		add("/failed_active_hc")
	}
	if h.ejectedUntil.Load() > time.Now().UnixNano() {
		add("/failed_outlier_check")
	}
	if flags == "" {
		return "healthy"
	}
	return flags
}

// Active returns the host's requests in flight.
func (h *Host) Active() int64 { return h.active.Load() }

// Counts returns total and failed (5xx or connect error) requests sent to the host.
func (h *Host) Counts() (total, failed uint64) { return h.rqTotal.Load(), h.rqError.Load() }

// hostSet is an immutable set of hosts, replaced as a whole on EDS or DNS updates.
type hostSet struct {
	hosts      []*Host
	priorities [][]*Host // index = priority
	ring       []ringEntry
}
