package tls

import (
	"crypto/tls"
	"net"
)

// Client starts a TLS client on conn whose cached sessions are filed under
// the certificate and root generations current as the connection begins. A
// TLS 1.3 ticket arrives after the handshake; keyed at that later moment, a
// ticket from before a rotation would be filed under the new generation and
// resumed, old identity and all, by every connection after it.
func Client(conn net.Conn, cfg *tls.Config) *tls.Conn {
	if s, ok := cfg.ClientSessionCache.(*clientSessions); ok {
		cfg = cfg.Clone()
		cfg.ClientSessionCache = s.bound()
	}
	return tls.Client(conn, cfg)
}
