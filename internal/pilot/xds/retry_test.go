package xds

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/proxy/router"
)

// Istio's retryOn may list status codes ("503"): pilot must hand them to
// the proxy as retriable status codes, or the proxy refuses the whole
// route configuration (a NACK, and every route of the port goes stale).
func TestRetryOnStatusCodesReachTheProxy(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
    retries: {attempts: 3, retryOn: "503,connect-failure,504"}
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(1, w.Input()))
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	rp := routeFor(t, r, "9080", "ratings.").Routes[0].GetRoute().GetRetryPolicy()
	if rp.GetRetryOn() != "connect-failure,retriable-status-codes" || !slices.Equal(rp.GetRetriableStatusCodes(), []uint32{503, 504}) || rp.GetNumRetries().GetValue() != 3 {
		t.Fatalf("retry policy %v; want retry_on connect-failure,retriable-status-codes with codes 503 and 504, 3 retries", rp)
	}
	rc := find[*routev3.RouteConfiguration](t, r, resourcev3.RouteType, "9080")
	if _, err := router.Compile(rc); err != nil {
		t.Fatalf("the proxy refuses pilot's route configuration: %v", err)
	}
}
