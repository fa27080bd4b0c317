package dnsproxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/nds"
)

// upstream is a real DNS server on loopback standing for the pod's
// resolver: it knows example.org (and big.example.org, with more
// addresses than a UDP reply holds) and records the transport of each
// question it was asked.
type upstream struct {
	addr string
	mu   sync.Mutex
	seen []string // "udp example.org." ...
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	// One port for UDP and TCP, from freeport: a UDP port the kernel
	// picked may be taken over TCP (ci40c: address already in use).
	u.addr = fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	pc, err := net.ListenPacket("udp", u.addr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", u.addr)
	if err != nil {
		t.Fatal(err)
	}
	handler := func(network string) dns.HandlerFunc {
		return func(w dns.ResponseWriter, r *dns.Msg) {
			q := r.Question[0]
			u.mu.Lock()
			u.seen = append(u.seen, network+" "+q.Name)
			u.mu.Unlock()
			m := new(dns.Msg)
			m.SetReply(r)
			switch strings.ToLower(q.Name) {
			case "example.org.":
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("127.0.0.77")})
			case "big.example.org.":
				for i := 1; i <= 60; i++ {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 1, 0, byte(i))})
				}
				if network == "udp" {
					m.Truncate(udpSize(r))
				}
			default:
				m.Rcode = dns.RcodeNameError
			}
			_ = w.WriteMsg(m)
		}
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler("udp")}, {Listener: l, Handler: handler("tcp")}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

func (u *upstream) asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

var table = nds.Table{
	"reviews.default.svc.cluster.local": {IPs: []string{"198.19.0.10"}, Registry: nds.RegistryKubernetes, Shortname: "reviews", Namespace: "default"},
	"ratings.other.svc.cluster.local":   {IPs: []string{"198.19.0.11"}, Registry: nds.RegistryKubernetes, Shortname: "ratings", Namespace: "other"},
	"db.internal":                       {IPs: []string{"240.240.0.7"}, Registry: nds.RegistryExternal},
	"dual.internal":                     {IPs: []string{"198.51.100.1", "2001:db8::1"}, Registry: nds.RegistryExternal},
	"many.internal":                     {IPs: manyIPs(60), Registry: nds.RegistryExternal},
}

func manyIPs(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("198.51.100.%d", i))
	}
	return out
}

func startProxy(t *testing.T, ups ...string) string {
	t.Helper()
	s := New(Options{Upstreams: ups, Search: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Namespace: "default"})
	s.SetTable(table)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t))
	if err := s.Start(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return addr
}

// ask sends one question the way a stub resolver does and returns the reply.
func ask(t *testing.T, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	var resp *dns.Msg
	var err error
	for i := 0; i < 20; i++ { // the listeners start in their own goroutines
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		if resp, _, err = c.Exchange(m, server); err == nil {
			return resp
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	return nil
}

func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch x := rr.(type) {
		case *dns.A:
			out = append(out, x.A.String())
		case *dns.AAAA:
			out = append(out, x.AAAA.String())
		}
	}
	sort.Strings(out)
	return out
}

func TestAnswersMeshHostsInEverySearchForm(t *testing.T) {
	up := startUpstream(t)
	srv := startProxy(t, up.addr)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"reviews.default.svc.cluster.local", dns.TypeA, []string{"198.19.0.10"}},
		{"REVIEWS.Default.svc.cluster.local", dns.TypeA, []string{"198.19.0.10"}},
		{"reviews.default.svc", dns.TypeA, []string{"198.19.0.10"}},
		{"reviews.default", dns.TypeA, []string{"198.19.0.10"}},
		{"reviews", dns.TypeA, []string{"198.19.0.10"}}, // the proxy's own namespace
		{"ratings.other", dns.TypeA, []string{"198.19.0.11"}},
		{"ratings.other.default.svc.cluster.local", dns.TypeA, []string{"198.19.0.11"}}, // the resolver appended a search domain
		{"db.internal", dns.TypeA, []string{"240.240.0.7"}},
		{"db.internal.default.svc.cluster.local", dns.TypeA, []string{"240.240.0.7"}},
		{"db.internal.cluster.local", dns.TypeA, []string{"240.240.0.7"}},
		{"dual.internal", dns.TypeA, []string{"198.51.100.1"}},
		{"dual.internal", dns.TypeAAAA, []string{"2001:db8::1"}},
		{"db.internal", dns.TypeAAAA, nil}, // known, no IPv6: an empty answer, not NXDOMAIN
	} {
		for _, network := range []string{"udp", "tcp"} {
			resp := ask(t, network, srv, tc.name, tc.qtype)
			if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
				t.Errorf("%s %s %s: rcode %s authoritative %v", network, tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[resp.Rcode], resp.Authoritative)
			}
			if got := addrs(resp); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %s %s: %v, want %v", network, tc.name, dns.TypeToString[tc.qtype], got, tc.want)
			}
			for _, rr := range resp.Answer {
				if rr.Header().Ttl != TTL {
					t.Errorf("%s %s: TTL %d, want %d", network, tc.name, rr.Header().Ttl, TTL)
				}
			}
		}
	}
	if got := up.asked(); len(got) != 0 {
		t.Errorf("mesh names went upstream: %v", got)
	}
	// The bare name of a Service in another namespace is not completed
	// to it (the pod's search path would not either): it goes upstream.
	if resp := ask(t, "udp", srv, "ratings", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("bare name of another namespace's Service: rcode %s, want NXDOMAIN from upstream", dns.RcodeToString[resp.Rcode])
	}
}

func TestForwardsUnknownNamesOverTheClientsTransport(t *testing.T) {
	up := startUpstream(t)
	srv := startProxy(t, up.addr)
	for _, network := range []string{"udp", "tcp"} {
		resp := ask(t, network, srv, "example.org", dns.TypeA)
		if resp.Rcode != dns.RcodeSuccess || !reflect.DeepEqual(addrs(resp), []string{"127.0.0.77"}) {
			t.Errorf("%s example.org: %s %v", network, dns.RcodeToString[resp.Rcode], addrs(resp))
		}
		if resp := ask(t, network, srv, "nowhere.example.org", dns.TypeA); resp.Rcode != dns.RcodeNameError {
			t.Errorf("%s nowhere.example.org: rcode %s, want upstream's NXDOMAIN", network, dns.RcodeToString[resp.Rcode])
		}
		// A type the table does not answer, for a mesh name, is the upstream's to answer.
		if resp := ask(t, network, srv, "db.internal", dns.TypeTXT); resp.Rcode != dns.RcodeNameError {
			t.Errorf("%s TXT db.internal: rcode %s, want upstream's", network, dns.RcodeToString[resp.Rcode])
		}
	}
	want := []string{"udp example.org.", "udp nowhere.example.org.", "udp db.internal.", "tcp example.org.", "tcp nowhere.example.org.", "tcp db.internal."}
	if got := up.asked(); !reflect.DeepEqual(got, want) {
		t.Errorf("upstream was asked %v, want %v", got, want)
	}
}

func TestTruncatesLargeUDPRepliesAndAnswersInFullOverTCP(t *testing.T) {
	up := startUpstream(t)
	srv := startProxy(t, up.addr)
	for _, name := range []string{"many.internal", "big.example.org"} { // from the table, from upstream
		u := ask(t, "udp", srv, name, dns.TypeA)
		if !u.Truncated || len(u.Answer) >= 60 {
			t.Errorf("udp %s: truncated %v with %d answers, want TC and fewer than 60", name, u.Truncated, len(u.Answer))
		}
		u.Compress = true // as it came on the wire
		if b, err := u.Pack(); err != nil || len(b) > dns.MinMsgSize {
			t.Errorf("udp %s: reply of %d bytes (%v), want at most 512", name, len(b), err)
		}
		tc := ask(t, "tcp", srv, name, dns.TypeA)
		if tc.Truncated || len(tc.Answer) != 60 {
			t.Errorf("tcp %s: truncated %v with %d answers, want all 60", name, tc.Truncated, len(tc.Answer))
		}
	}
}

func TestNoUpstreamIsServfail(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answering: the query times out
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := New(Options{Upstreams: []string{"127.0.0.1:1"}})
	s.tcpClient.Timeout, s.udpClient.Timeout = 200*time.Millisecond, 200*time.Millisecond
	m := new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeA)
	if resp := s.Answer(context.Background(), m, "tcp"); resp.Rcode != dns.RcodeServerFailure || resp.Id != m.Id {
		t.Fatalf("rcode %s id %d, want SERVFAIL for %d", dns.RcodeToString[resp.Rcode], resp.Id, m.Id)
	}
}

func TestReadResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("# kubelet\nnameserver 198.19.0.10\nnameserver fd00::a ; v6\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\nnameserver bogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := ReadResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	want := ResolvConf{Nameservers: []string{"198.19.0.10", "fd00::a"}, Search: []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local"}}
	if !reflect.DeepEqual(rc, want) {
		t.Fatalf("%+v, want %+v", rc, want)
	}
	if got := rc.Upstreams(); !reflect.DeepEqual(got, []string{"198.19.0.10:53", "[fd00::a]:53"}) {
		t.Fatalf("upstreams %v", got)
	}
	if _, err := ReadResolvConf(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("missing file: no error")
	}
}

// FuzzAnswer feeds arbitrary bytes, as a client could send them to the
// captured port, through what the server does with a message it decoded:
// whatever it answers must pack and carry the question's id.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"reviews.", dns.TypeA}, {"db.internal.default.svc.cluster.local.", dns.TypeAAAA}, {"many.internal.", dns.TypeA}, {".", dns.TypeANY}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, false)
		b, _ := m.Pack()
		f.Add(b)
	}
	s := New(Options{Search: []string{"default.svc.cluster.local", "svc.cluster.local"}, Namespace: "default"})
	s.SetTable(table)
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the server's reader drops what does not decode
		}
		q := req.Question
		if len(q) == 1 && !(q[0].Qtype == dns.TypeA || q[0].Qtype == dns.TypeAAAA) {
			return // forwarded; no upstream here
		}
		if len(q) == 1 {
			if _, ok := s.lookup(q[0].Name); !ok {
				return
			}
		}
		for _, network := range []string{"udp", "tcp"} {
			resp := s.Answer(context.Background(), req, network)
			if resp == nil {
				t.Fatal("no reply")
			}
			out, err := resp.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v", err)
			}
			if resp.Id != req.Id {
				t.Fatalf("reply id %d for %d", resp.Id, req.Id)
			}
			if network == "udp" && len(out) > max(udpSize(req), dns.MinMsgSize) && !resp.Truncated {
				t.Fatalf("udp reply of %d bytes not truncated", len(out))
			}
		}
	})
}
