package tls

import (
	"crypto/tls"
	"net"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/pilot/ca"
)

// connect runs one mTLS connection over loopback, the server writing a byte
// so the client reads the session ticket; it reports whether the server
// resumed a session and the identities each side saw.
func connect(t *testing.T, client, server *tls.Config) (resumed bool, serverSaw, clientSaw string, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		resumed bool
		peer    string
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{}
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if tc.Handshake() != nil {
			done <- result{}
			return
		}
		tc.Write([]byte("x"))
		cs := tc.ConnectionState()
		done <- result{cs.DidResume, Principal(&cs)}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		buf := make([]byte, 1)
		if _, err = c.Read(buf); err == nil {
			cs := c.ConnectionState()
			clientSaw = Principal(&cs)
		}
		c.Close()
	}
	r := <-done
	return r.resumed, r.peer, clientSaw, err
}

func upstreamContext(sni, sanPrefix string) *tlsv3.UpstreamTlsContext {
	common := meshCommon()
	common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
		DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
			SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: sanPrefix}}}}},
		ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
	}}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: sni}
}

// New connections between two sidecars resume the first one's session
// (no certificate work) until a secret either side holds is replaced; then
// one full handshake presents and checks the new certificates, and a client
// whose CA the server no longer trusts cannot get back in on an old ticket.
func TestSessionsResumeUntilASecretRotates(t *testing.T) {
	mesh := newAuthority(t)
	cs := &secretMap{m: map[string]*tlsv3.Secret{}}
	ss := &secretMap{m: map[string]*tlsv3.Secret{}}
	cs.set(workloadSecret(t, mesh, "sleep"))
	cs.set(rootSecret(mesh))
	ss.set(workloadSecret(t, mesh, "app"))
	ss.set(rootSecret(mesh))
	app := ca.SPIFFEID("default", "app")
	// A distinct SNI per test keeps the process-wide cache's entries apart from other tests'.
	client, err := ClientConfig(upstreamContext("outbound_.80_._.resume.default.svc.cluster.local", app), cs, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: meshCommon(), RequireClientCertificate: wrapperspb.Bool(true)}, ss, "listener")
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, wantResumed bool, wantClient string) {
		t.Helper()
		resumed, s, c, err := connect(t, client, server)
		if err != nil || s != ca.SPIFFEID("default", "sleep") || c != wantClient {
			t.Fatalf("%s: server saw %q, client saw %q, err %v", what, s, c, err)
		}
		if resumed != wantResumed {
			t.Fatalf("%s: session resumed %v, want %v", what, resumed, wantResumed)
		}
	}
	step("first connection", false, app)
	for i := 0; i < 5; i++ {
		step("a later connection", true, app)
	}

	// Another cluster expecting a different identity of the same server does not borrow the session.
	other, err := ClientConfig(upstreamContext("outbound_.80_._.resume.default.svc.cluster.local", "spiffe://cluster.local/ns/default/sa/nobody"), cs, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	if resumed, _, _, err := connect(t, other, server); err == nil || resumed {
		t.Fatalf("a cluster whose SAN matcher refuses the server connected (resumed %v, err %v); want a full handshake that fails", resumed, err)
	}

	// The server's certificate rotates: one full handshake shows the new one, then resumption again.
	ss.set(workloadSecret(t, mesh, "app-v2"))
	step("after the server's certificate rotated", false, ca.SPIFFEID("default", "app-v2"))
	step("the next connection", true, ca.SPIFFEID("default", "app-v2"))

	// The client's certificate rotates: its cached sessions are dropped.
	cs.set(workloadSecret(t, mesh, "sleep"))
	step("after the client's certificate rotated", false, ca.SPIFFEID("default", "app-v2"))
	step("the next connection", true, ca.SPIFFEID("default", "app-v2"))

	// The server now trusts another root only: the client, which holds a
	// ticket, is refused rather than resumed on it.
	ss.set(rootSecret(newAuthority(t)))
	if resumed, s, _, err := connect(t, client, server); err == nil || resumed || s != "" {
		t.Fatalf("after the server's root rotated, the old CA's client got in (resumed %v, seen as %q, err %v)", resumed, s, err)
	}
}

// A TLS 1.3 ticket reaches the client after its handshake, on the
// connection's first read. When the client's certificate rotates between
// the two, that ticket still carries the old certificate's identity, so it
// must not be kept for the new generation: the next connection presents the
// rotated certificate, as the server sees.
func TestATicketArrivingAfterARotationKeepsTheOldGeneration(t *testing.T) {
	mesh := newAuthority(t)
	cs := &secretMap{m: map[string]*tlsv3.Secret{}}
	ss := &secretMap{m: map[string]*tlsv3.Secret{}}
	cs.set(workloadSecret(t, mesh, "sleep"))
	cs.set(rootSecret(mesh))
	ss.set(workloadSecret(t, mesh, "app"))
	ss.set(rootSecret(mesh))
	app := ca.SPIFFEID("default", "app")
	client, err := ClientConfig(upstreamContext("outbound_.80_._.late-ticket.default.svc.cluster.local", app), cs, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: meshCommon(), RequireClientCertificate: wrapperspb.Bool(true)}, ss, "listener")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, server)
			if tc.Handshake() != nil {
				seen <- ""
				c.Close()
				continue
			}
			st := tc.ConnectionState()
			seen <- Principal(&st)
			tc.Write([]byte("x"))
			tc.Close()
		}
	}()
	dial := func() *tls.Conn {
		t.Helper()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		tc := Client(raw, client)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	read := func(tc *tls.Conn) {
		t.Helper()
		if _, err := tc.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		tc.Close()
	}

	first := dial()
	if got := <-seen; got != ca.SPIFFEID("default", "sleep") {
		t.Fatalf("first connection: server saw %q", got)
	}
	// The rotation lands after the handshake, before the ticket is read.
	cs.set(workloadSecret(t, mesh, "sleep-v2"))
	read(first)

	second := dial()
	if got := <-seen; got != ca.SPIFFEID("default", "sleep-v2") {
		t.Fatalf("the connection after the rotation: server saw %q, want the rotated certificate's identity", got)
	}
	read(second)
}
