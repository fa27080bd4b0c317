package model

import (
	"fmt"
	"strings"
)

// JWKSFetchMode is who fetches the keys at a RequestAuthentication's
// jwksUri: Istio's PILOT_JWT_ENABLE_REMOTE_JWKS modes.
type JWKSFetchMode string

const (
	// JWKSIstiod: pilot fetches every jwksUri and inlines the keys (Istio's default).
	JWKSIstiod JWKSFetchMode = "istiod"
	// JWKSHybrid: the proxy fetches a jwksUri whose host is a Service or
	// ServiceEntry it sees, through that host's outbound cluster; pilot
	// fetches and inlines the rest.
	JWKSHybrid JWKSFetchMode = "hybrid"
	// JWKSEnvoy: the proxy fetches every jwksUri through the outbound
	// cluster of its host; a host it does not see has no such cluster, so
	// its tokens are refused.
	JWKSEnvoy JWKSFetchMode = "envoy"
)

// ParseJWKSFetchMode reads a mode as Istio's PILOT_JWT_ENABLE_REMOTE_JWKS
// does: istiod or false, hybrid or true, envoy; "" is istiod.
func ParseJWKSFetchMode(s string) (JWKSFetchMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "istiod", "false":
		return JWKSIstiod, nil
	case "hybrid", "true":
		return JWKSHybrid, nil
	case "envoy":
		return JWKSEnvoy, nil
	}
	return "", fmt.Errorf("%q: want istiod (or false), hybrid (or true) or envoy", s)
}
