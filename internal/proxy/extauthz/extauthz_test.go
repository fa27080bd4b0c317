package extauthz

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
)

// Settings the filter does not carry out are refused by name (a NACK),
// never ignored: an authorization check that silently did less would let
// more through.
func TestRefusedByName(t *testing.T) {
	httpSvc := &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
		ServerUri: &corev3.HttpUri{Uri: "http://authz", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "authz"}, Timeout: durationpb.New(1)}}}
	for _, tc := range []struct {
		c    *extauthzv3.ExtAuthz
		want string
	}{
		{&extauthzv3.ExtAuthz{Services: httpSvc, ClearRouteCache: true}, "clear_route_cache"},
		{&extauthzv3.ExtAuthz{Services: httpSvc, IncludePeerCertificate: true}, "include_peer_certificate"},
		{&extauthzv3.ExtAuthz{Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x"}}}}}, "google_grpc"},
		{&extauthzv3.ExtAuthz{}, "one of http_service or grpc_service is required"},
		{&extauthzv3.ExtAuthz{Services: httpSvc, TransportApiVersion: corev3.ApiVersion_V2}, "only V3"}, //nolint:staticcheck
	} {
		_, err := compile(tc.c, "ext_authz", httpfilter.Env{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want an error naming %q", tc.c, err, tc.want)
		}
	}
	if _, err := compile(&extauthzv3.ExtAuthz{Services: httpSvc, FailureModeAllow: true}, "ext_authz", httpfilter.Env{}); err != nil {
		t.Errorf("a plain HTTP service: %v", err)
	}
}
