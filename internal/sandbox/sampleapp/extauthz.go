package sampleapp

import (
	"context"
	"io"
	"net"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// The ext-authz role is an external authorization service of the kind
// users put behind Istio's CUSTOM policies, speaking both of Envoy's
// ext_authz protocols: a request carrying ExtAuthzHeader with the value
// ExtAuthzAllow is allowed, any other is denied with a 403. Either way the
// answer carries ExtAuthzResultHeader ("allowed" or "denied"), so a client
// can tell a request the service checked from one let through without a
// check (failOpen).
const (
	ExtAuthzHeader       = "x-ext-authz"
	ExtAuthzAllow        = "allow"
	ExtAuthzResultHeader = "x-ext-authz-check-result"
	// ExtAuthzDenied is the start of the body of a denial.
	ExtAuthzDenied = "denied by ext-authz"
)

func extAuthzAllowed(value string) bool { return value == ExtAuthzAllow }

// extAuthzHTTP answers Envoy's HTTP check requests: every request is one
// (the original method and path, under the provider's pathPrefix, with the
// headers the provider includes), so nothing else is served on its port.
func extAuthzHTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if extAuthzAllowed(r.Header.Get(ExtAuthzHeader)) {
			w.Header().Set(ExtAuthzResultHeader, "allowed")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set(ExtAuthzResultHeader, "denied")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, ExtAuthzDenied+": "+ExtAuthzHeader+" is not "+ExtAuthzAllow+" on "+r.Method+" "+r.URL.RequestURI()+"\n")
	})
}

// extAuthzGRPC is the same decision over envoy.service.auth.v3.Authorization.
type extAuthzGRPC struct {
	authv3.UnimplementedAuthorizationServer
}

func (extAuthzGRPC) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if extAuthzAllowed(h.GetHeaders()[ExtAuthzHeader]) {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: ExtAuthzResultHeader, Value: "allowed"}}},
		}}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
		Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: ExtAuthzResultHeader, Value: "denied"}}},
		Body:    ExtAuthzDenied + " over gRPC: " + ExtAuthzHeader + " is not " + ExtAuthzAllow + " on " + h.GetMethod() + " " + h.GetPath() + "\n",
	}}}, nil
}

// ServeExtAuthzGRPC serves envoy.service.auth.v3.Authorization on l until it fails.
func ServeExtAuthzGRPC(l net.Listener) error {
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, extAuthzGRPC{})
	return s.Serve(l)
}
