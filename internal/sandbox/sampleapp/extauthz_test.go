package sampleapp_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

// The ext-authz role answers HTTP check requests for any method and path
// (the filter sends the original ones): allowed with the header, denied
// with a 403 and a reason otherwise, /health included.
func TestExtAuthzHTTPChecks(t *testing.T) {
	s := serve(t, sampleapp.Config{Role: "ext-authz"})
	check := func(method, path, value string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, nil)
		if value != "" {
			req.Header.Set(sampleapp.ExtAuthzHeader, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get(sampleapp.ExtAuthzResultHeader), string(b)
	}
	for _, c := range []struct {
		method, path, value string
		code                int
		result              string
	}{
		{"GET", "/productpage", "allow", 200, "allowed"},
		{"POST", "/check/api/v1/products?x=1", "allow", 200, "allowed"},
		{"GET", "/productpage", "deny", 403, "denied"},
		{"GET", "/productpage", "", 403, "denied"},
		{"GET", "/health", "", 403, "denied"},
		{"DELETE", "/x", "Allow", 403, "denied"},
	} {
		code, result, body := check(c.method, c.path, c.value)
		if code != c.code || result != c.result {
			t.Errorf("%s %s with %s=%q: %d %s=%q, want %d %q", c.method, c.path, sampleapp.ExtAuthzHeader, c.value, code, sampleapp.ExtAuthzResultHeader, result, c.code, c.result)
		}
		if code == 403 && !strings.HasPrefix(body, sampleapp.ExtAuthzDenied) {
			t.Errorf("denial body %q, want it to start with %q", body, sampleapp.ExtAuthzDenied)
		}
	}
}

// Over gRPC: envoy.service.auth.v3 Check with the same decision, the
// result header in the OK or denied response and a 403 status on denial.
func TestExtAuthzGRPCChecks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sampleapp.ServeExtAuthzGRPC(l)
	t.Cleanup(func() { l.Close() })
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	ask := func(value string) *authv3.CheckResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hdr := map[string]string{":path": "/productpage"}
		if value != "" {
			hdr[sampleapp.ExtAuthzHeader] = value
		}
		resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/productpage", Headers: hdr}}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ok := ask("allow")
	if codes.Code(ok.GetStatus().GetCode()) != codes.OK || len(ok.GetOkResponse().GetHeaders()) != 1 ||
		ok.GetOkResponse().GetHeaders()[0].GetHeader().GetValue() != "allowed" {
		t.Errorf("allowed check: %v", ok)
	}
	for _, v := range []string{"", "deny"} {
		no := ask(v)
		d := no.GetDeniedResponse()
		if codes.Code(no.GetStatus().GetCode()) != codes.PermissionDenied || d.GetStatus().GetCode() != 403 ||
			!strings.HasPrefix(d.GetBody(), sampleapp.ExtAuthzDenied) || d.GetHeaders()[0].GetHeader().GetValue() != "denied" {
			t.Errorf("check with %q: %v, want PERMISSION_DENIED with a 403, the reason and the result header", v, no)
		}
	}
}
