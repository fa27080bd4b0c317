package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Config describes what the init step captures.
type Config struct {
	ProxyUID            int // traffic from this uid (and gid) is the proxy's own and is not captured
	ProxyGID            int
	OutboundPort        int      // where outbound TCP is redirected (Istio: 15001)
	InboundPort         int      // where inbound TCP is redirected (Istio: 15006)
	InboundPorts        string   // "*" for all, or a comma list of ports to capture
	ExcludeInboundPorts []int    // never captured inbound (the proxy's own 15020, 15021, ...)
	ExcludeOutboundCIDR []string // destinations left alone
}

// Default is Istio's layout.
func Default() Config {
	return Config{ProxyUID: 1337, ProxyGID: 1337, OutboundPort: 15001, InboundPort: 15006, InboundPorts: "*",
		ExcludeInboundPorts: []int{15020, 15021, 15090}}
}

// Validate checks the configuration before any rule is written.
func (c Config) Validate() error {
	for name, p := range map[string]int{"outbound port": c.OutboundPort, "inbound port": c.InboundPort} {
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
	return nil
}

// Rules renders the nat table in iptables-restore format.
func (c Config) Rules() string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	w("*nat")
	for _, ch := range []string{"MESH_INBOUND", "MESH_IN_REDIRECT", "MESH_OUTPUT", "MESH_REDIRECT"} {
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
	// The proxy's own connections leave as they are, or every upstream dial would loop back into it.
	w("-A MESH_OUTPUT -m owner --uid-owner %d -j RETURN", c.ProxyUID)
	w("-A MESH_OUTPUT -m owner --gid-owner %d -j RETURN", c.ProxyGID)
	w("-A MESH_OUTPUT -d 127.0.0.1/32 -j RETURN")
	for _, cidr := range c.ExcludeOutboundCIDR {
		w("-A MESH_OUTPUT -d %s -j RETURN", cidr)
	}
	w("-A MESH_OUTPUT -j MESH_REDIRECT")
	w("COMMIT")
	return b.String()
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
