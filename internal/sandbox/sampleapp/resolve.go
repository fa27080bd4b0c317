package sampleapp

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"mesh.dev/mesh/internal/proxy/dnsproxy"
)

// Resolve asks DNS for name's IPv4 addresses as a stub resolver would and
// only DNS (the hosts file is not read, so a test can tell what the pod's
// DNS answered): the first nameserver of resolvConf, the name with each
// search domain appended first when it has fewer dots than the usual
// ndots of 5, then the name itself. It writes "name: addr,addr" and
// returns nil on the first answer with addresses; attempts as Fetch.
func Resolve(ctx context.Context, name, resolvConf string, attempts int, out io.Writer) error {
	rc, err := dnsproxy.ReadResolvConf(resolvConf)
	if err != nil {
		return err
	}
	if len(rc.Nameservers) == 0 {
		return fmt.Errorf("%s names no nameserver", resolvConf)
	}
	server := net.JoinHostPort(rc.Nameservers[0], "53")
	var candidates []string
	if strings.Count(name, ".") < 5 {
		for _, s := range rc.Search {
			candidates = append(candidates, name+"."+s)
		}
	}
	candidates = append(candidates, name)
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	var last error
	for i := 0; i < max(attempts, 1); i++ {
		if i > 0 {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for _, q := range candidates {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(q), dns.TypeA)
			r, _, err := c.ExchangeContext(ctx, m, server)
			if err != nil {
				last = fmt.Errorf("%s: %w", q, err)
				continue
			}
			var addrs []string
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					addrs = append(addrs, a.A.String())
				}
			}
			if len(addrs) > 0 {
				fmt.Fprintf(out, "%s: %s\n", name, strings.Join(addrs, ","))
				return nil
			}
			last = fmt.Errorf("%s: %s, no address", q, dns.RcodeToString[r.Rcode])
		}
		fmt.Fprintf(out, "attempt %d: resolve %s: %v\n", i+1, name, last)
	}
	return fmt.Errorf("resolve %s: %w", name, last)
}
