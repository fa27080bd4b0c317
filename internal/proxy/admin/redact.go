package admin

import corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

func redactedSource() *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
}
