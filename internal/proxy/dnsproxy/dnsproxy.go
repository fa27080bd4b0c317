// Package dnsproxy is the sidecar's DNS server (Istio's DNS proxying): it
// answers A and AAAA queries for the mesh's hosts from the NameTable pilot
// sends, in every form the pod's search path asks them, and forwards every
// other query to the resolvers the pod's resolv.conf named, over the
// transport the client used. The capture rules send the app's port 53
// traffic here (127.0.0.1:15053); the proxy's own queries upstream are not
// captured (they leave as the proxy's uid).
package dnsproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"mesh.dev/mesh/internal/nds"
)

// Address is where the sidecar's DNS server listens, UDP and TCP (Istio's).
const Address = "127.0.0.1:15053"

// TTL is the time to live of the answers from the table, in seconds (Istio's).
const TTL = 30

// upstreamTimeout bounds one forwarded query to one upstream resolver.
const upstreamTimeout = 5 * time.Second

// Options configure a Server.
type Options struct {
	// Upstreams are the resolvers (host:port) unknown names go to, in
	// order: the pod's resolv.conf nameservers.
	Upstreams []string
	// Search are the resolv.conf search domains: a name asked with one of
	// them appended is answered as the name itself.
	Search []string
	// Namespace is the proxy's namespace: its Services answer by their
	// bare name too.
	Namespace string
	Log       *slog.Logger
}

// Server answers DNS from a name table and forwards the rest.
type Server struct {
	opts  Options
	names atomic.Pointer[map[string][]netip.Addr]

	mu       sync.Mutex
	udp, tcp *dns.Server
	// upstream exchanges, one client per transport
	udpClient, tcpClient *dns.Client
}

// New returns a server with an empty table (every query is forwarded
// until SetTable).
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Server{opts: o,
		udpClient: &dns.Client{Net: "udp", Timeout: upstreamTimeout},
		tcpClient: &dns.Client{Net: "tcp", Timeout: upstreamTimeout}}
	empty := map[string][]netip.Addr{}
	s.names.Store(&empty)
	return s
}

// SetTable replaces the table the server answers from.
func (s *Server) SetTable(t nds.Table) {
	m := names(t, s.opts.Namespace)
	s.names.Store(&m)
}

// names lists every name the table answers, lower case and fully
// qualified (trailing dot), with its addresses: each host and its alt
// hosts, and a Kubernetes Service also as name.namespace and
// name.namespace.svc, and by its bare name in the proxy's own namespace,
// as the pod's search path would complete them.
func names(t nds.Table, ns string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for host, in := range t {
		var addrs []netip.Addr
		for _, ip := range in.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
		if len(addrs) == 0 {
			continue
		}
		forms := append([]string{host}, in.AltHosts...)
		if in.Registry == nds.RegistryKubernetes && in.Shortname != "" && in.Namespace != "" {
			forms = append(forms, in.Shortname+"."+in.Namespace, in.Shortname+"."+in.Namespace+".svc")
			if in.Namespace == ns {
				forms = append(forms, in.Shortname)
			}
		}
		for _, f := range forms {
			if f = strings.ToLower(strings.TrimSuffix(f, ".")); f != "" {
				out[f+"."] = addrs
			}
		}
	}
	return out
}

// lookup finds the addresses of a fully qualified name: the name itself,
// or the name with one search domain taken off (the resolver appended it).
func (s *Server) lookup(name string) ([]netip.Addr, bool) {
	m := *s.names.Load()
	name = strings.ToLower(name)
	if a, ok := m[name]; ok {
		return a, true
	}
	for _, d := range s.opts.Search {
		suffix := "." + strings.ToLower(strings.Trim(d, ".")) + "."
		if base, ok := strings.CutSuffix(name, suffix); ok && base != "" {
			if a, ok := m[base+"."]; ok {
				return a, true
			}
		}
	}
	return nil, false
}

// Start listens on addr (UDP and TCP) and serves until Close.
func (s *Server) Start(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns proxy: listen udp %s: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns proxy: listen tcp %s: %w", addr, err)
	}
	s.mu.Lock()
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve("udp"))}
	s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve("tcp"))}
	udp, tcp := s.udp, s.tcp
	s.mu.Unlock()
	for _, srv := range []*dns.Server{udp, tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.opts.Log.Error("dns proxy stopped", "err", err)
			}
		}()
	}
	return nil
}

// Close stops serving.
func (s *Server) Close() error {
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.mu.Unlock()
	var errs []error
	for _, srv := range []*dns.Server{udp, tcp} {
		if srv != nil {
			if err := srv.Shutdown(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Server) serve(network string) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		resp := s.Answer(context.Background(), req, network)
		if resp == nil {
			return
		}
		if err := w.WriteMsg(resp); err != nil {
			s.opts.Log.Debug("dns proxy: write answer", "err", err)
		}
	}
}

// Answer is the reply to req received over network ("udp" or "tcp"): from
// the table for an A or AAAA question about a name it has, else the
// upstream resolvers' reply (SERVFAIL when none answers). A UDP reply too
// large for the client is truncated (TC set), so it asks again over TCP.
func (s *Server) Answer(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	if req == nil || req.Response || len(req.Question) != 1 {
		resp := new(dns.Msg)
		if req == nil {
			return nil
		}
		resp.SetRcode(req, dns.RcodeFormatError)
		return resp
	}
	q := req.Question[0]
	if q.Qclass == dns.ClassINET && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) {
		if addrs, ok := s.lookup(q.Name); ok {
			return s.fromTable(req, q, addrs, network)
		}
	}
	return s.forward(ctx, req, network)
}

// fromTable answers q from the table; a known name with no address of the
// asked family gets an empty answer, not a referral upstream.
func (s *Server) fromTable(req *dns.Msg, q dns.Question, addrs []netip.Addr, network string) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: TTL}
	for _, a := range addrs {
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
		}
	}
	if network == "udp" {
		resp.Truncate(udpSize(req))
	}
	return resp
}

// udpSize is the largest UDP reply the client takes: its EDNS0 size, else 512.
func udpSize(req *dns.Msg) int {
	if o := req.IsEdns0(); o != nil {
		return int(o.UDPSize())
	}
	return dns.MinMsgSize
}

// forward asks each upstream in turn over the client's transport and
// returns the first reply (truncated ones included: the client retries
// over TCP, which is forwarded over TCP).
func (s *Server) forward(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	c := s.udpClient
	if network == "tcp" {
		c = s.tcpClient
	}
	var last error
	for _, up := range s.opts.Upstreams {
		resp, _, err := c.ExchangeContext(ctx, req, up)
		if err == nil && resp != nil {
			if network == "udp" {
				resp.Truncate(udpSize(req))
			}
			return resp
		}
		last = err
	}
	if last != nil {
		s.opts.Log.Debug("dns proxy: no upstream answered", "name", req.Question[0].Name, "err", last)
	}
	resp := new(dns.Msg)
	resp.SetRcode(req, dns.RcodeServerFailure)
	return resp
}

// ResolvConf is what a resolv.conf says that the server uses.
type ResolvConf struct {
	Nameservers []string // addresses as written (no port)
	Search      []string
}

// Upstreams are the nameservers as host:port on port 53.
func (r ResolvConf) Upstreams() []string {
	out := make([]string, 0, len(r.Nameservers))
	for _, n := range r.Nameservers {
		out = append(out, net.JoinHostPort(n, "53"))
	}
	return out
}

// ReadResolvConf reads the nameserver and search lines of a resolv.conf
// (the last search or domain line wins, as in the C resolver).
func ReadResolvConf(path string) (ResolvConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return ResolvConf{}, fmt.Errorf("resolv.conf: %w", err)
	}
	defer f.Close()
	var rc ResolvConf
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		switch fs[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(fs[1]); err == nil {
				rc.Nameservers = append(rc.Nameservers, a.String())
			}
		case "search", "domain":
			rc.Search = append([]string(nil), fs[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return ResolvConf{}, fmt.Errorf("resolv.conf %s: %w", path, err)
	}
	return rc, nil
}
