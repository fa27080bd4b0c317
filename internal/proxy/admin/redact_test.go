package admin

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/config"
)

// A bootstrap may carry private keys inline (static secrets, a static
// cluster's client certificate): /config_dump must not show them, as
// Envoy's does not, while the rest of the bootstrap stays readable.
func TestConfigDumpRedactsTheBootstrapsSecrets(t *testing.T) {
	const key, cert = "-----BEGIN PRIVATE KEY-----secret-one", "-----BEGIN CERTIFICATE-----public"
	const password = "hunter2-password"
	tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: cert}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(key)}},
			Password:         &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: password}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
		Clusters: []*clusterv3.Cluster{{Name: "xds-grpc", TransportSocket: &corev3.TransportSocket{
			Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx}}}},
		Secrets: []*tlsv3.Secret{{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: cert}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: key}},
		}}}},
	}}
	before := proto.Clone(b)
	d := ConfigDump(&config.Snapshot{Bootstrap: b}, false)
	out, err := protojson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	js := string(out)
	for _, s := range []string{"secret-one", password, "c2VjcmV0LW9uZ"} { // the key, the password, the key's base64
		if strings.Contains(js, s) {
			t.Errorf("/config_dump shows %q", s)
		}
	}
	for _, s := range []string{"xds-grpc", "public", "[redacted]"} {
		if !strings.Contains(js, s) {
			t.Errorf("/config_dump lost %q", s)
		}
	}
	if !proto.Equal(b, before) {
		t.Error("redacting the dump changed the proxy's own bootstrap")
	}
}
