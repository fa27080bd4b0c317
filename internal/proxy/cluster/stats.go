package cluster

import "sync/atomic"

// Stats are a cluster's counters, named as Envoy names them under cluster.<name>.
type Stats struct {
	RqTotal, RqActive, Rq2xx, Rq3xx, Rq4xx, Rq5xx, RqError atomic.Int64
	RqTimeout, RqRetry, RqRetryOverflow, RqRetrySuccess    atomic.Int64
	RqOverflow, RqPendingOverflow, NoHealthyUpstream       atomic.Int64
	CxTotal, CxConnectFail                                 atomic.Int64
	EjectionsTotal, HCSuccess, HCFailure                   atomic.Int64
}

// Stat is one named value.
type Stat struct {
	Name  string
	Value int64
}

// Snapshot lists the counters with Envoy's stat names.
func (c *Cluster) StatList() []Stat {
	s := &c.Stats
	healthy := 0
	hosts := c.Hosts()
	for _, h := range hosts {
		if h.HealthFlags() == "healthy" {
			healthy++
		}
	}
	ejected := int64(0)
	for _, h := range hosts {
		if h.HealthFlags() != "healthy" && h.ejections.Load() > 0 {
			ejected++
		}
	}
	return []Stat{
		{"upstream_rq_total", s.RqTotal.Load()},
		{"upstream_rq_active", s.RqActive.Load()},
		{"upstream_rq_2xx", s.Rq2xx.Load()},
		{"upstream_rq_3xx", s.Rq3xx.Load()},
		{"upstream_rq_4xx", s.Rq4xx.Load()},
		{"upstream_rq_5xx", s.Rq5xx.Load()},
		{"upstream_cx_connect_fail", s.CxConnectFail.Load()},
		{"upstream_rq_timeout", s.RqTimeout.Load()},
		{"upstream_rq_retry", s.RqRetry.Load()},
		{"upstream_rq_retry_overflow", s.RqRetryOverflow.Load()},
		{"upstream_rq_retry_success", s.RqRetrySuccess.Load()},
		{"upstream_rq_pending_overflow", s.RqPendingOverflow.Load() + s.RqOverflow.Load()},
		{"upstream_cx_none_healthy", s.NoHealthyUpstream.Load()},
		{"upstream_cx_total", s.CxTotal.Load()},
		{"upstream_cx_active", c.activeCx.Load()},
		{"outlier_detection.ejections_total", s.EjectionsTotal.Load()},
		{"outlier_detection.ejections_active", ejected},
		{"health_check.success", s.HCSuccess.Load()},
		{"health_check.failure", s.HCFailure.Load()},
		{"membership_total", int64(len(hosts))},
		{"membership_healthy", int64(healthy)},
	}
}
