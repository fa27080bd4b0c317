package agent

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
)

// phaseFilter is a filter of the test's own, registered the way an embedder
// adds one: it answers 418 when asked, stamps every response's headers with
// the status it saw, and (in its body variant) appends its config to
// upstream bodies.
type phaseFilter struct{ suffix string }

func (f *phaseFilter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	if s.Request.Header.Get("X-Stop") != "" {
		return s.SendLocalReply(http.StatusTeapot, http.Header{"X-Stopped-By": {"phase"}}, "stopped", "TEST")
	}
	return httpfilter.Continue
}

func (f *phaseFilter) EncodeHeaders(s *httpfilter.Stream, code int, h http.Header) {
	h.Set("X-Encoded", strconv.Itoa(code))
}

type bodyFilter struct{ phaseFilter }

func (f *bodyFilter) EncodeBody(s *httpfilter.Stream, code int, h http.Header, body []byte) []byte {
	return append(body, f.suffix...)
}

func phaseFactory(withBody bool) httpfilter.Factory {
	url := "type.googleapis.com/google.protobuf.StringValue"
	if withBody {
		url = "type.googleapis.com/google.protobuf.BytesValue"
	}
	return httpfilter.Factory{Name: "test.phases", ConfigTypes: []string{url},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			if withBody {
				v := &wrapperspb.BytesValue{}
				if err := c.Any.UnmarshalTo(v); err != nil {
					return nil, fmt.Errorf("%s: %w", c.Field, err)
				}
				return &bodyFilter{phaseFilter{suffix: string(v.GetValue())}}, nil
			}
			return &phaseFilter{}, nil
		}}
}

// The response-headers phase runs on both paths, on upstream answers and on
// local replies (the filter's own and the router's 404), with the same result.
func TestFilterResponseHeadersOnBothPaths(t *testing.T) {
	up := startUpstream(t, "a", nil)
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"app"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}}
	filters := []*hcmv3.HttpFilter{namedFilter(t, "phases", wrapperspb.String(""))}
	pps := bothPathsFull(t, nil, []httpfilter.Factory{phaseFactory(false)}, vhs, filters, staticCluster("a", up))
	app := map[string]string{"Host": "app"}
	runBoth(t, pps, []filterCase{
		{name: "upstream answer", path: "/", header: app, code: 200, body: "a", headers: map[string]string{"X-Encoded": "200"}},
		{name: "the filter's own local reply", path: "/", header: map[string]string{"Host": "app", "X-Stop": "1"}, code: 418, body: "stopped",
			headers: map[string]string{"X-Encoded": "418", "X-Stopped-By": "phase", "Content-Type": "text/plain"}},
		{name: "the router's 404", path: "/", header: map[string]string{"Host": "elsewhere"}, code: 404, headers: map[string]string{"X-Encoded": "404"}},
	})
}

// A filter with a response-body phase gets the whole upstream body on both
// proxies; the lean one serves such an HCM with net/http, which can buffer.
func TestFilterResponseBodyPhase(t *testing.T) {
	up := startUpstream(t, "a", nil)
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}}
	filters := []*hcmv3.HttpFilter{namedFilter(t, "phases", wrapperspb.Bytes([]byte("+filtered")))}
	pps := bothPathsFull(t, nil, []httpfilter.Factory{phaseFactory(true)}, vhs, filters, staticCluster("a", up))
	for _, pp := range pps {
		a := pp.do(t, filterCase{path: "/", headers: map[string]string{"X-Encoded": "", "Content-Length": ""}})
		if a.code != 200 || a.body != "a+filtered" || a.headers != "Content-Length=10 X-Encoded=200" {
			t.Errorf("%s: %+v; want 200 \"a+filtered\" with its length and the headers phase", pp.name, a)
		}
	}
	if n := pps[0].leanServed(); n != 0 {
		t.Errorf("the lean path served %d requests of an HCM whose filter reads response bodies; want it handed to net/http", n)
	}
}
