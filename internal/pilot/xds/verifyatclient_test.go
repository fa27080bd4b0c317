package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/model"
)

// meshConfig.verifyCertificateAtClient: a SIMPLE origination without
// caCertificates verifies the server against the system roots and its
// name, unless the rule says insecureSkipVerify; off, it is not verified
// (Istio's default, and Envoy's without trusted_ca).
func TestVerifyCertificateAtClient(t *testing.T) {
	const rules = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com, pinned.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.example.com
  trafficPolicy: {tls: {mode: SIMPLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pinned, namespace: default}
spec:
  host: pinned.example.com
  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true}}
`
	validation := func(verify bool, host string) *tlsv3.CertificateValidationContext {
		w, _ := bookinfo(t)
		if err := w.AddYAML([]byte(rules)); err != nil {
			t.Fatal(err)
		}
		w.In.Mesh = &meshapi.MeshConfig{VerifyCertificateAtClient: wrapperspb.Bool(verify)}
		r := generate(t, NewPushContext(model.Build(1, w.Input())), w.PodProxy(model.SidecarProxy, "productpage-v1"))
		c := find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, "outbound|443||"+host)
		var uc tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&uc); err != nil {
			t.Fatalf("%s: no TLS transport socket: %v", host, err)
		}
		return uc.GetCommonTlsContext().GetValidationContext()
	}
	vc := validation(true, "api.example.com")
	sans := vc.GetMatchTypedSubjectAltNames()
	if vc.GetTrustedCa().GetFilename() != SystemRoots || len(sans) != 1 || sans[0].GetMatcher().GetExact() != "api.example.com" {
		t.Errorf("verifyCertificateAtClient on: validation %v; want the system roots and the SAN api.example.com", vc)
	}
	if vc := validation(true, "pinned.example.com"); vc != nil {
		t.Errorf("insecureSkipVerify: validation %v; want none", vc)
	}
	if vc := validation(false, "api.example.com"); vc != nil {
		t.Errorf("verifyCertificateAtClient off: validation %v; want none", vc)
	}
}
