package cluster

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"mesh.dev/mesh/internal/proxy/protofields"
)

// outlier is passive health checking: hosts that fail in a row are ejected for a while.
type outlier struct {
	consec5xx, consecGateway int32
	enforce5xx, enforceGw    bool
	baseEjection, maxEject   time.Duration
	maxPercent               int
}

// compileOutlier honours the consecutive-failure detectors; the success-rate
// and failure-percentage ones are refused by name. interval is accepted:
// failures are judged as they happen and an ejection ends by its own clock,
// so there is no sweep for it to pace.
func compileOutlier(od *clusterv3.OutlierDetection, f string) (*outlier, error) {
	if err := protofields.Check(od, f+".outlier_detection", "consecutive_5xx", "consecutive_gateway_failure", "enforcing_consecutive_5xx",
		"enforcing_consecutive_gateway_failure", "base_ejection_time", "max_ejection_time", "max_ejection_percent", "interval"); err != nil {
		return nil, err
	}
	o := &outlier{consec5xx: 5, consecGateway: 5, baseEjection: 30 * time.Second, maxEject: 300 * time.Second, maxPercent: 10, enforce5xx: true}
	if v := od.GetConsecutive_5Xx(); v != nil {
		o.consec5xx = int32(v.GetValue())
	}
	if v := od.GetConsecutiveGatewayFailure(); v != nil {
		o.consecGateway = int32(v.GetValue())
	}
	if v := od.GetEnforcingConsecutive_5Xx(); v != nil {
		o.enforce5xx = v.GetValue() > 0
	}
	if v := od.GetEnforcingConsecutiveGatewayFailure(); v != nil {
		o.enforceGw = v.GetValue() > 0
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		o.baseEjection = d.AsDuration()
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		o.maxEject = d.AsDuration()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		o.maxPercent = int(v.GetValue())
	}
	return o, nil
}

func (o *outlier) record(c *Cluster, h *Host, status int, err error) {
	gateway := err != nil || status == 502 || status == 503 || status == 504
	if err == nil && status < 500 {
		h.consec5xx.Store(0)
		return
	}
	n := h.consec5xx.Add(1)
	trip := (o.enforce5xx && o.consec5xx > 0 && n >= o.consec5xx) ||
		(o.enforceGw && gateway && o.consecGateway > 0 && n >= o.consecGateway)
	if !trip {
		return
	}
	now := time.Now().UnixNano()
	hosts := c.Hosts()
	ejected := 0
	for _, x := range hosts {
		if x.ejectedUntil.Load() > now {
			ejected++
		}
	}
	if len(hosts) == 0 || (ejected+1)*100 > o.maxPercent*len(hosts) {
		return
	}
	times := h.ejections.Add(1)
	d := min(o.baseEjection*time.Duration(times), max(o.maxEject, o.baseEjection))
	h.ejectedUntil.Store(now + int64(d))
	h.consec5xx.Store(0)
	c.Stats.EjectionsTotal.Add(1)
}
