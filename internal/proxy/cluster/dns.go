package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"mesh.dev/mesh/internal/proxy/logging"
)

// upstreamLog is Envoy's "upstream" logger.
var upstreamLog = logging.Default.Logger("upstream")

func (c *Cluster) compileDNS(pc *clusterv3.Cluster, f string) error {
	c.dnsRate = 5 * time.Second
	if d := pc.GetDnsRefreshRate(); d != nil {
		c.dnsRate = d.AsDuration()
	}
	switch pc.GetDnsLookupFamily() {
	case clusterv3.Cluster_V4_ONLY:
		c.dnsNetwork = "ip4"
	case clusterv3.Cluster_V6_ONLY:
		c.dnsNetwork = "ip6"
	case clusterv3.Cluster_AUTO, clusterv3.Cluster_ALL:
		c.dnsNetwork = "ip"
	default:
		return fmt.Errorf("%s: dns_lookup_family %s is not supported (supported: AUTO, V4_ONLY, V6_ONLY, ALL)", f, pc.GetDnsLookupFamily())
	}
	for li, le := range pc.GetLoadAssignment().GetEndpoints() {
		loc := le.GetLocality()
		lw := uint32(1)
		if w := le.GetLoadBalancingWeight(); w != nil {
			lw = w.GetValue()
		}
		for ei, lbe := range le.GetLbEndpoints() {
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return fmt.Errorf("%s: load_assignment.endpoints[%d].lb_endpoints[%d].endpoint.address: socket_address is required", f, li, ei)
			}
			w := uint32(1)
			if x := lbe.GetLoadBalancingWeight(); x != nil {
				w = x.GetValue()
			}
			c.dnsNames = append(c.dnsNames, dnsTarget{
				host: sa.GetAddress(), port: strconv.Itoa(int(sa.GetPortValue())),
				weight: w, priority: le.GetPriority(), lweight: lw,
				locality: loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone(),
				sock:     c.endpointSocket(le, lbe),
			})
		}
	}
	c.hosts.Store(newHostSet(nil, false, 0))
	return nil
}

func (c *Cluster) dnsLoop() {
	t := time.NewTicker(c.dnsRate)
	defer t.Stop()
	for {
		c.resolve()
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// resolve turns every DNS name into one host per address, as STRICT_DNS does.
func (c *Cluster) resolve() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var hosts []*Host
	for _, t := range c.dnsNames {
		ips, err := net.DefaultResolver.LookupIP(ctx, c.dnsNetwork, t.host)
		addrs := make([]string, len(ips))
		for i, ip := range ips {
			addrs[i] = ip.String()
		}
		if err != nil {
			upstreamLog.Warn("dns resolution failed", "cluster", c.Name, "host", t.host, "err", err)
			continue
		}
		for _, a := range addrs {
			hosts = append(hosts, &Host{Addr: net.JoinHostPort(a, t.port), Hostname: t.host, Weight: t.weight, Priority: t.priority,
				Locality: t.locality, LocalityWeight: t.lweight, edsHealthy: true, sock: t.sock})
		}
	}
	c.setHosts(hosts)
}
