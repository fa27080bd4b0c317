package capture

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// Config describes what the init step captures. The fields are Istio's
// istio-iptables options, which the traffic.sidecar.istio.io annotations set.
type Config struct {
	ProxyUID            int // traffic from this uid (and gid) is the proxy's own and is not captured
	ProxyGID            int
	OutboundPort        int    // where outbound TCP is redirected (Istio: 15001)
	InboundPort         int    // where inbound TCP is redirected (Istio: 15006)
	InboundPorts        string // "*" for all, or a comma list of ports to capture (includeInboundPorts)
	ExcludeInboundPorts []int  // never captured inbound (the proxy's own 15020, 15021, ...; excludeInboundPorts)
	// IncludeOutboundCIDR are the destinations captured outbound: ["*"] for
	// all, CIDRs for those only, none for no outbound capture (includeOutboundIPRanges).
	IncludeOutboundCIDR []string
	ExcludeOutboundCIDR []string // destinations left alone (excludeOutboundIPRanges)
	// IncludeOutboundPorts are captured whatever their destination, excluded
	// ranges included (includeOutboundPorts); ExcludeOutboundPorts are never
	// captured (excludeOutboundPorts), which wins over both.
	IncludeOutboundPorts []int
	ExcludeOutboundPorts []int
	// RedirectDNS sends the app's DNS (UDP and TCP port 53) to the
	// proxy's DNS server on DNSPort (Istio's --redirect-dns), the proxy's
	// own queries excepted. DNSServers limits it to queries for those
	// resolvers (the pod's resolv.conf nameservers, as Istio does); none:
	// every destination.
	RedirectDNS bool
	DNSPort     int
	DNSServers  []string
}

// Default is Istio's layout.
func Default() Config {
	return Config{ProxyUID: 1337, ProxyGID: 1337, OutboundPort: 15001, InboundPort: 15006, InboundPorts: "*",
		ExcludeInboundPorts: []int{15020, 15021, 15090}, IncludeOutboundCIDR: []string{"*"}, DNSPort: 15053}
}

// Validate checks the configuration before any rule is written.
func (c Config) Validate() error {
	ports := map[string]int{"outbound port": c.OutboundPort, "inbound port": c.InboundPort}
	if c.RedirectDNS {
		ports["DNS port"] = c.DNSPort
	}
	for i, d := range c.DNSServers {
		if a, err := netip.ParseAddr(d); err != nil || !a.Is4() {
			return fmt.Errorf("DNS servers: entry %d %q: want an IPv4 address (the pod's capture is IPv4 only)", i+1, d)
		}
	}
	for name, p := range ports {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("%s %d: want 1-65535", name, p)
		}
	}
	if c.InboundPorts != "*" && c.InboundPorts != "" {
		for _, s := range strings.Split(c.InboundPorts, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(s)); err != nil || n <= 0 || n > 65535 {
				return fmt.Errorf("inbound ports %q: %q is not a port (want \"*\" or a comma list)", c.InboundPorts, s)
			}
		}
	}
	for name, ps := range map[string][]int{"exclude inbound ports": c.ExcludeInboundPorts, "include outbound ports": c.IncludeOutboundPorts, "exclude outbound ports": c.ExcludeOutboundPorts} {
		for _, p := range ps {
			if p <= 0 || p > 65535 {
				return fmt.Errorf("%s: %d is not a port (want 1-65535)", name, p)
			}
		}
	}
	for i, cidr := range c.IncludeOutboundCIDR {
		if cidr == "*" {
			if len(c.IncludeOutboundCIDR) > 1 {
				return fmt.Errorf("include outbound ranges %v: \"*\" stands alone", c.IncludeOutboundCIDR)
			}
			continue
		}
		if _, err := ParseCIDR(cidr); err != nil {
			return fmt.Errorf("include outbound ranges: entry %d: %w", i+1, err)
		}
	}
	for i, cidr := range c.ExcludeOutboundCIDR {
		if _, err := ParseCIDR(cidr); err != nil {
			return fmt.Errorf("exclude outbound ranges: entry %d: %w", i+1, err)
		}
	}
	return nil
}

// ParseCIDR reads an IPv4 range as iptables takes it: a CIDR, or an address
// standing for /32. IPv6 is refused: the rules here are IPv4 only.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP range (want a CIDR such as 198.18.0.0/16, or an address)", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: IPv6 ranges are not captured (the pod's capture is IPv4 only)", s)
	}
	return p.Masked(), nil
}

// ParsePorts reads a comma list of ports; "" is none.
func ParsePorts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("%q is not a port (want a comma list of 1-65535)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseCIDRs reads a comma list of ranges; "*" is every destination, "" none.
func ParseCIDRs(s string) ([]string, error) {
	if strings.TrimSpace(s) == "*" {
		return []string{"*"}, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		p, err := ParseCIDR(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.String())
	}
	return out, nil
}

// Rules renders the nat table in iptables-restore format.
func (c Config) Rules() string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	w("*nat")
	chains := []string{"MESH_INBOUND", "MESH_IN_REDIRECT", "MESH_OUTPUT", "MESH_REDIRECT"}
	if c.RedirectDNS {
		chains = append(chains, "MESH_DNS")
	}
	for _, ch := range chains {
		w(":%s - [0:0]", ch)
	}
	w("-A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports %d", c.InboundPort)
	w("-A MESH_REDIRECT -p tcp -j REDIRECT --to-ports %d", c.OutboundPort)
	if c.InboundPorts != "" {
		w("-A PREROUTING -p tcp -j MESH_INBOUND")
		w("-A MESH_INBOUND -p tcp --dport %d -j RETURN", c.InboundPort)
		for _, p := range c.ExcludeInboundPorts {
			w("-A MESH_INBOUND -p tcp --dport %d -j RETURN", p)
		}
		if c.InboundPorts == "*" {
			w("-A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT")
		} else {
			for _, p := range strings.Split(c.InboundPorts, ",") {
				w("-A MESH_INBOUND -p tcp --dport %s -j MESH_IN_REDIRECT", strings.TrimSpace(p))
			}
		}
	}
	w("-A OUTPUT -p tcp -j MESH_OUTPUT")
	// Excluded ports first: they win over every inclusion, as in Istio.
	for _, p := range c.ExcludeOutboundPorts {
		w("-A MESH_OUTPUT -p tcp --dport %d -j RETURN", p)
	}
	// The proxy's own connections leave as they are, or every upstream dial would loop back into it.
	w("-A MESH_OUTPUT -m owner --uid-owner %d -j RETURN", c.ProxyUID)
	w("-A MESH_OUTPUT -m owner --gid-owner %d -j RETURN", c.ProxyGID)
	w("-A MESH_OUTPUT -d 127.0.0.1/32 -j RETURN")
	// The app's DNS over TCP goes to the proxy's DNS server (after the
	// exceptions, where the fallback rules go in before it).
	if c.RedirectDNS {
		for _, d := range c.dnsDestinations() {
			w("-A MESH_OUTPUT -p tcp --dport 53%s -j REDIRECT --to-ports %d", d, c.DNSPort)
		}
	}
	for _, p := range c.IncludeOutboundPorts {
		w("-A MESH_OUTPUT -p tcp --dport %d -j MESH_REDIRECT", p)
	}
	for _, cidr := range c.ExcludeOutboundCIDR {
		w("-A MESH_OUTPUT -d %s -j RETURN", cidr)
	}
	for _, cidr := range c.IncludeOutboundCIDR {
		if cidr == "*" {
			w("-A MESH_OUTPUT -j MESH_REDIRECT")
		} else {
			w("-A MESH_OUTPUT -d %s -j MESH_REDIRECT", cidr)
		}
	}
	if c.RedirectDNS {
		// UDP is not captured otherwise: only DNS, and not the proxy's
		// own queries upstream, which would come back to it.
		w("-A OUTPUT -p udp --dport 53 -j MESH_DNS")
		w("-A MESH_DNS -m owner --uid-owner %d -j RETURN", c.ProxyUID)
		w("-A MESH_DNS -m owner --gid-owner %d -j RETURN", c.ProxyGID)
		for _, d := range c.dnsDestinations() {
			w("-A MESH_DNS -p udp%s -j REDIRECT --to-ports %d", d, c.DNSPort)
		}
	}
	w("COMMIT")
	return b.String()
}

// dnsDestinations are the -d matches of the DNS rules: one per resolver,
// or none (every destination).
func (c Config) dnsDestinations() []string {
	if len(c.DNSServers) == 0 {
		return []string{""}
	}
	out := make([]string, len(c.DNSServers))
	for i, d := range c.DNSServers {
		out[i] = " -d " + d + "/32"
	}
	return out
}

// Apply loads the rules with iptables-restore (needs CAP_NET_ADMIN in the target namespace).
// prefix is prepended to the command, e.g. ["ip", "netns", "exec", "pod"].
func (c Config) Apply(ctx context.Context, prefix ...string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	args := append(append([]string{}, prefix...), "iptables-restore", "--noflush")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(c.Rules())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
