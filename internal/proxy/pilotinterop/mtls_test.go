package pilotinterop

import (
	"fmt"
	"net/netip"
	"testing"
)

// TestStrictOnEveryInboundPort: under a namespace-wide STRICT
// PeerAuthentication, a pod port no Service names used to take plaintext
// through the catch-all passthrough. Every captured port must refuse it
// and take mesh mTLS; PERMISSIVE and DISABLE, and a workload's portLevelMtls
// exception on such a port, still pass plaintext.
func TestStrictOnEveryInboundPort(t *testing.T) {
	const strictNS = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: %s}}
`
	offService, exception := newApp(t), newApp(t)
	type want struct{ plaintext, mtls bool }
	cases := []struct {
		name   string
		config string
		port   map[netip.AddrPort]want
		svc    want // Service port 9080
	}{
		{"STRICT", fmt.Sprintf(strictNS, "STRICT"),
			map[netip.AddrPort]want{offService: {false, true}}, want{false, true}},
		{"STRICT with a PERMISSIVE portLevelMtls port", fmt.Sprintf(strictNS, "STRICT") + fmt.Sprintf(`---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls: {"%d": {mode: PERMISSIVE}}
`, exception.Port()),
			map[netip.AddrPort]want{offService: {false, true}, exception: {true, true}}, want{false, true}},
		{"PERMISSIVE", fmt.Sprintf(strictNS, "PERMISSIVE"),
			map[netip.AddrPort]want{offService: {true, true}}, want{true, true}},
		{"DISABLE", fmt.Sprintf(strictNS, "DISABLE"),
			map[netip.AddrPort]want{offService: {true, false}}, want{true, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, _ := world(t)
			if err := w.AddYAML([]byte(c.config)); err != nil {
				t.Fatal(err)
			}
			h := startInbound(t, w, pushContext(w), "reviews-v1")
			check := func(what string, dst netip.AddrPort, ns string, ok bool) {
				t.Helper()
				code, err := h.callTo(t, dst, ns, "bookinfo-productpage", "/reviews/0")
				if got := err == nil && code == 200; got != ok {
					t.Errorf("%s to %s: status %d, error %v; want served=%v", what, dst, code, err, ok)
				}
			}
			for dst, wnt := range c.port {
				check("plaintext", dst, "", wnt.plaintext)
				check("mTLS", dst, "default", wnt.mtls)
			}
			svc := netip.AddrPortFrom(h.podIP, 9080)
			check("plaintext", svc, "", c.svc.plaintext)
			check("mTLS", svc, "default", c.svc.mtls)
		})
	}
}
