package listener

import (
	"net/http"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// xfccHeader maintains x-forwarded-client-cert as forward_client_cert_details asks.
func (m *HCM) xfccHeader(in *http.Request, out http.Header) {
	const h = "X-Forwarded-Client-Cert"
	switch m.xfcc {
	case hcmv3.HttpConnectionManager_SANITIZE:
		out.Del(h)
		return
	case hcmv3.HttpConnectionManager_FORWARD_ONLY, hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		return
	}
	peer := meshtls.Principal(in.TLS)
	if peer == "" {
		if m.xfcc == hcmv3.HttpConnectionManager_SANITIZE_SET {
			out.Del(h)
		}
		return
	}
	// Our own identity (By=) is omitted: Go does not expose the certificate we presented.
	v := "URI=" + peer
	if m.xfcc == hcmv3.HttpConnectionManager_APPEND_FORWARD && out.Get(h) != "" {
		out.Set(h, out.Get(h)+","+v)
		return
	}
	out.Set(h, v)
}
