package capture_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mesh.dev/mesh/internal/nds"
	"mesh.dev/mesh/internal/proxy/capture"
	"mesh.dev/mesh/internal/proxy/dnsproxy"
)

// resolverIP is the pod's resolver (its resolv.conf nameserver), held by
// the namespace's loopback.
const resolverIP = "198.18.0.53"

// dnsHelper runs the DNS roles inside the namespace: the pod's resolver
// (knows example.org, not db.internal), the proxy's DNS server (knows
// db.internal from its table, forwards the rest to the resolver), and a
// client asking the resolver as a stub resolver does.
func dnsHelper(role string) int {
	switch role {
	case "resolver":
		h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			if strings.EqualFold(r.Question[0].Name, "example.org.") {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("127.0.0.77")})
			} else {
				m.Rcode = dns.RcodeNameError
			}
			_ = w.WriteMsg(m)
		})
		for _, n := range []string{"udp", "tcp"} {
			go func() {
				fmt.Fprintln(os.Stderr, (&dns.Server{Addr: resolverIP + ":53", Net: n, Handler: h}).ListenAndServe())
			}()
		}
		select {}
	case "dnsproxy":
		s := dnsproxy.New(dnsproxy.Options{Upstreams: []string{resolverIP + ":53"}})
		s.SetTable(nds.Table{"db.internal": {IPs: []string{"198.51.100.7"}, Registry: nds.RegistryExternal}})
		if err := s.Start(dnsproxy.Address); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		select {}
	case "dnsclient":
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(os.Getenv("MESH_CAPTURE_TARGET")), dns.TypeA)
		c := &dns.Client{Net: os.Getenv("MESH_DNS_NET"), Timeout: 3 * time.Second}
		r, _, err := c.Exchange(m, resolverIP+":53")
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		var out []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
		fmt.Printf("%s %s", dns.RcodeToString[r.Rcode], strings.Join(out, ","))
		return 0
	}
	return 2
}

// TestDNSCaptureInNetworkNamespace: with --redirect-dns for the pod's
// resolver, the app's DNS to it, over UDP and TCP, is answered by the
// proxy's DNS server (db.internal, which the resolver does not know), and
// what the proxy forwards (example.org) reaches the resolver without
// coming back to the proxy (its group is excluded). Without the switch the
// resolver answers db.internal itself: NXDOMAIN.
func TestDNSCaptureInNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "iptables-restore", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y iptables iproute2 util-linux)", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name     string
		redirect bool
		want     map[string]string // name → "RCODE addrs"
	}{
		{"redirect-dns", true, map[string]string{"db.internal": "NOERROR 198.51.100.7", "example.org": "NOERROR 127.0.0.77"}},
		{"no capture", false, map[string]string{"db.internal": "NXDOMAIN ", "example.org": "NOERROR 127.0.0.77"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := fmt.Sprintf("meshdns-%d-%d", os.Getpid(), i)
			run := func(args ...string) {
				t.Helper()
				if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			run("ip", "netns", "add", ns)
			t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
			run("ip", "-n", ns, "link", "set", "lo", "up")
			run("ip", "-n", ns, "addr", "add", podIP+"/32", "dev", "lo")
			run("ip", "-n", ns, "addr", "add", resolverIP+"/32", "dev", "lo")
			c := capture.Default()
			c.RedirectDNS, c.DNSServers = tc.redirect, []string{resolverIP}
			if err := c.Apply(t.Context(), "ip", "netns", "exec", ns); err != nil {
				t.Fatal(err)
			}
			start := func(role string, pre ...string) {
				cmd := exec.Command("ip", append(append([]string{"netns", "exec", ns}, pre...), self)...)
				cmd.Env = append(os.Environ(), "MESH_CAPTURE_HELPER="+role)
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			}
			start("resolver")
			start("dnsproxy", "setpriv", "--regid=1337", "--clear-groups")
			ask := func(name, network string) string {
				cmd := exec.Command("ip", "netns", "exec", ns, self)
				cmd.Env = append(os.Environ(), "MESH_CAPTURE_HELPER=dnsclient", "MESH_CAPTURE_TARGET="+name, "MESH_DNS_NET="+network)
				out, _ := cmd.Output()
				return string(out)
			}
			// Both servers are up once example.org resolves (through
			// the proxy when captured).
			for deadline := time.Now().Add(15 * time.Second); ask("example.org", "udp") != tc.want["example.org"]; time.Sleep(200 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("example.org never resolved: %q\n%s", ask("example.org", "udp"), c.Rules())
				}
			}
			networks := []string{"udp", "tcp"}
			if !tc.redirect {
				networks = networks[:1] // TCP would go to the outbound capture's 15001, where nothing listens here
			}
			for name, want := range tc.want {
				for _, network := range networks {
					if got := ask(name, network); got != want {
						t.Errorf("%s over %s: %q, want %q", name, network, got, want)
					}
				}
			}
			if !tc.redirect {
				return
			}
			// In sidecar fallback the app's DNS goes to its resolver
			// directly, the proxy passed by (as if it were gone).
			if err := capture.SetFallback(t.Context(), true, nil, "ip", "netns", "exec", ns); err != nil {
				t.Fatal(err)
			}
			for _, network := range networks {
				if got := ask("db.internal", network); got != "NXDOMAIN " {
					t.Errorf("in fallback, db.internal over %s: %q, want the resolver's NXDOMAIN", network, got)
				}
			}
			if err := capture.SetFallback(t.Context(), false, nil, "ip", "netns", "exec", ns); err != nil {
				t.Fatal(err)
			}
			if got := ask("db.internal", "udp"); got != tc.want["db.internal"] {
				t.Errorf("fallback off, db.internal: %q, want the proxy's answer again", got)
			}
		})
	}
}
