package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// The JWT benchmark asks what verifying a token costs mesh-proxy (#14's
// target: a JWT-verified request at most 1.2× the CPU of an unverified one
// on the proxy bench's path, key cached, one verify per token while
// cached): the proxy bench's load through mesh-proxy with the jwt_authn
// filter pilot generates for a RequestAuthentication (RS256, inline JWKS)
// and an RBAC ALLOW on the request principal, every request carrying the
// same valid token, against the same binary with an RBAC filter only and
// the same request bytes. Targets are interleaved round by round; each
// figure is the median over the rounds, CPU from the threads' schedstat.
func init() {
	register(Bench{Name: "jwt", Issue: 14, Run: runJWTBench})
}

func runJWTBench(env *Env) ([]Row, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Use: "sig"}}})
	if err != nil {
		return nil, err
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		return nil, err
	}
	tok, err := josejwt.Signed(sg).Claims(map[string]any{"iss": "https://issuer.example", "sub": "bench", "aud": "app",
		"exp": time.Now().Add(24 * time.Hour).Unix()}).Serialize()
	if err != nil {
		return nil, err
	}
	jwtFilters := func(keys string) string {
		return `          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                origins-0:
                  issuer: https://issuer.example
                  audiences: [app]
                  ` + keys + `
                  payload_in_metadata: https://issuer.example
                  forward: true
              rules:
              - match: {prefix: /}
                requires: {requires_any: {requirements: [{provider_name: origins-0}, {allow_missing: {}}]}}
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  request-principal:
                    permissions: [{any: true}]
                    principals: [{metadata: {filter: istio_authn, path: [{key: request.auth.principal}], value: {string_match: {exact: "https://issuer.example/bench"}}}}]
`
	}
	jwksLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	jwksSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(set) })}
	go jwksSrv.Serve(jwksLn)
	defer jwksSrv.Close()
	jwksCluster := fmt.Sprintf(`  - name: "outbound|8080||jwks.example"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "outbound|8080||jwks.example"
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`, jwksLn.Addr().(*net.TCPAddr).Port)
	upPort, stopUp, err := pcUpstream()
	if err != nil {
		return nil, err
	}
	defer stopUp()
	dir, err := os.MkdirTemp("", "mesh-bench-jwt")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := env.Bin("mesh-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build", bin)
	}
	plain, err := pcStart(bin, "mesh-proxy, RBAC only (token not verified)", dir, upPort, pcRBAC)
	if err != nil {
		return nil, err
	}
	defer plain.stop()
	verified, err := pcStart(bin, "mesh-proxy, jwt_authn (RS256) + RBAC on the request principal", dir, upPort,
		jwtFilters("local_jwks: {inline_string: '"+string(set)+"'}"))
	if err != nil {
		return nil, err
	}
	defer verified.stop()
	fetched, err := pcStart(bin, "mesh-proxy, jwt_authn (RS256, remote_jwks fetched by the proxy) + RBAC on the request principal", dir, upPort,
		jwtFilters(`remote_jwks: {http_uri: {uri: "http://jwks.example:8080/keys", cluster: "outbound|8080||jwks.example", timeout: 5s}, cache_duration: 300s}`),
		jwksCluster)
	if err != nil {
		return nil, err
	}
	defer fetched.stop()
	header := "Authorization: Bearer " + tok + "\r\n"
	plain.header, verified.header, fetched.header = header, header, header
	targets := []*pxTarget{plain, verified, fetched}
	for _, t := range targets {
		if r := pxMaxLoad(t, 200); r.errors > 0 {
			return nil, fmt.Errorf("%s: warm-up requests failed (%s)", t.name, r.firstErr)
		}
	}
	fixedRuns, maxRuns := map[string][]pxResult{}, map[string][]pxResult{}
	for round := 0; round < pcRounds; round++ {
		for _, t := range targets {
			c0 := pcCPU(t.pid)
			r := pxFixedLoad(t)
			r.cpu = pcCPU(t.pid) - c0
			fixedRuns[t.name] = append(fixedRuns[t.name], r)
			c0 = pcCPU(t.pid)
			r = pxMaxLoad(t, pcMaxRequests)
			r.cpu = pcCPU(t.pid) - c0
			maxRuns[t.name] = append(maxRuns[t.name], r)
		}
	}
	var rows []Row
	var notes []string
	for _, phase := range []struct {
		label string
		runs  map[string][]pxResult
		n     int
	}{{fmt.Sprintf("at %d req/s", pxRate), fixedRuns, pxFixedRequests}, {fmt.Sprintf("at max rate (%d connections, %d requests a round)", pxWorkers, pcMaxRequests), maxRuns, pcMaxRequests}} {
		per := func(t *pxTarget) float64 { return pxMedian(phase.runs[t.name]).cpu.Seconds() * 1000 / float64(phase.n) }
		spread := func(t *pxTarget) string {
			lo, hi := 0.0, 0.0
			for i, r := range phase.runs[t.name] {
				v := r.cpu.Seconds() * 1000 / float64(phase.n)
				if i == 0 || v < lo {
					lo = v
				}
				if v > hi {
					hi = v
				}
			}
			return fmt.Sprintf("%.4g–%.4g s over %d rounds", lo, hi, len(phase.runs[t.name]))
		}
		for _, v := range []*pxTarget{verified, fetched} {
			row := Row{Figure: fmt.Sprintf("%s (%s): CPU seconds per 1000 requests %s (median; %s)", v.name, pxSidecarConfig, phase.label, spread(v)),
				Value: per(v), Unit: "s", Baseline: plain.name + " (" + spread(plain) + ")", BaselineValue: per(plain),
				Target: "≤ 1.2× unverified", Command: "go run ./bench -only jwt"}
			row.Met = Check(row.Value <= 1.2*row.BaselineValue)
			rows = append(rows, row)
		}
		for _, t := range targets {
			for _, r := range phase.runs[t.name] {
				if r.errors > 0 {
					notes = append(notes, fmt.Sprintf("%s: %d failed requests in a round (first: %s)", t.name, r.errors, r.firstErr))
				}
			}
		}
	}
	if len(notes) > 0 {
		return rows, fmt.Errorf("%s", strings.Join(notes, "; "))
	}
	return rows, nil
}
