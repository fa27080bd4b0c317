package tls

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// TLS session resumption between sidecars. A new connection to an upstream
// the proxy has spoken to resumes the last session (a TLS 1.3 PSK handshake:
// no certificates sent, signed or verified) instead of a full handshake. A
// session is only ever resumed under the same rules it was established
// under: the client keys its sessions by the upstream TLS context (SNI, SAN
// matchers, ALPN, versions: the upstream identity the cluster expects) and by
// the generation of its certificate and trust roots; the server binds each
// ticket to the generation of its own certificate and roots. A rotated
// secret therefore forces the next connection through a full handshake that
// presents and checks the new certificates, as Envoy's rebuilt TLS context
// does. Certificates read from files or the environment can change under
// the same configuration, so connections using them always do full
// handshakes.

// sessionCacheSize bounds the sessions kept for all upstream contexts together.
const sessionCacheSize = 1024

// upstreamSessions is the process's one store of client sessions; keys carry
// the context and generations, so clusters never see each other's sessions.
var upstreamSessions = tls.NewLRUClientSessionCache(sessionCacheSize)

// contextScope names an upstream TLS context by its content, so a cluster
// recompiled with the same context keeps its sessions and two contexts that
// differ in anything never share one.
func contextScope(uc *tlsv3.UpstreamTlsContext) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(uc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// clientSessions is a cluster's view of upstreamSessions.
type clientSessions struct {
	scope   string
	secrets Secrets
	cert    *certSource // nil: the context sends no client certificate
	v       *verifier   // nil: the context checks nothing
}

// prefix is the part of a session key that scopes Go's key (the server
// name or address) to the context and the current certificate and roots;
// ok is false when a source cannot be told apart from its next version, and
// the session is not cached.
func (s *clientSessions) prefix() (string, bool) {
	certGen, rootsGen := uint64(1), uint64(1)
	if s.cert != nil {
		p, err := s.cert.current(s.secrets)
		if err != nil || p.gen == 0 {
			return "", false
		}
		certGen = p.gen
	}
	if s.v != nil {
		p, err := s.v.current()
		if err != nil || p.gen == 0 {
			return "", false
		}
		rootsGen = p.gen
	}
	var b []byte
	b = append(b, s.scope...)
	b = binary.BigEndian.AppendUint64(b, certGen)
	b = binary.BigEndian.AppendUint64(b, rootsGen)
	return string(b), true
}

func (s *clientSessions) Get(sessionKey string) (*tls.ClientSessionState, bool) {
	p, ok := s.prefix()
	if !ok {
		return nil, false
	}
	return upstreamSessions.Get(p + sessionKey)
}

func (s *clientSessions) Put(sessionKey string, cs *tls.ClientSessionState) {
	if p, ok := s.prefix(); ok {
		upstreamSessions.Put(p+sessionKey, cs)
	}
}

// bound fixes the generations at this moment for one connection (Client).
func (s *clientSessions) bound() tls.ClientSessionCache {
	p, ok := s.prefix()
	return &boundSessions{prefix: p, ok: ok}
}

// boundSessions is one connection's view of upstreamSessions: the session it
// resumes and the tickets it receives belong to the generations it started
// under, whenever they arrive.
type boundSessions struct {
	prefix string
	ok     bool
}

func (b *boundSessions) Get(sessionKey string) (*tls.ClientSessionState, bool) {
	if !b.ok {
		return nil, false
	}
	return upstreamSessions.Get(b.prefix + sessionKey)
}

func (b *boundSessions) Put(sessionKey string, cs *tls.ClientSessionState) {
	if b.ok {
		upstreamSessions.Put(b.prefix+sessionKey, cs)
	}
}

// serverTickets seals sessions into tickets with the listener context's own
// keys (random, kept in memory only, rotated daily by crypto/tls, each
// accepted for at most a week) and refuses a ticket issued before the
// context's certificate or trust roots changed.
type serverTickets struct {
	cfg     *tls.Config
	secrets Secrets
	cert    *certSource
	v       *verifier
}

// bindingTag marks the session extra this package adds.
var bindingTag = []byte("mesh.session/v1:")

// binding names the certificate and roots generation in force, or nil when
// a source cannot be told apart from its next version.
func (t *serverTickets) binding() []byte {
	p, err := t.cert.current(t.secrets)
	if err != nil || p.gen == 0 {
		return nil
	}
	rootsGen := uint64(1)
	if t.v != nil {
		r, err := t.v.current()
		if err != nil || r.gen == 0 {
			return nil
		}
		rootsGen = r.gen
	}
	b := append([]byte(nil), bindingTag...)
	b = binary.BigEndian.AppendUint64(b, p.gen)
	return binary.BigEndian.AppendUint64(b, rootsGen)
}

func (t *serverTickets) wrap(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	b := t.binding()
	if b == nil {
		// A ticket nobody will accept: the server still sends one (crypto/tls
		// always does), but it is refused on return, so the next handshake is full.
		b = append([]byte(nil), bindingTag...)
	}
	ss.Extra = append(ss.Extra, b)
	return t.cfg.EncryptTicket(cs, ss)
}

func (t *serverTickets) unwrap(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, err := t.cfg.DecryptTicket(identity, cs)
	if err != nil || ss == nil {
		return nil, err
	}
	want := t.binding()
	if want == nil {
		return nil, nil
	}
	for _, e := range ss.Extra {
		if bytes.Equal(e, want) {
			return ss, nil
		}
	}
	return nil, nil // issued under another certificate or roots: full handshake
}
