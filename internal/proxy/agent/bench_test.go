package agent

import (
	"io"
	"net/http"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// BenchmarkProxyRequest measures one small HTTP/1.1 request through the proxy over loopback.
func BenchmarkProxyRequest(b *testing.B) {
	t := &testing.T{}
	up := startUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	port := freePort(t)
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}}
	staticProxy(t, []*listenerv3.Listener{inlineListener(t, port, vhs)}, staticCluster("a", up))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	u := url(port, "/")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(u)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
