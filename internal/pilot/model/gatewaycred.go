package model

import (
	"fmt"
	"sort"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/credential"
)

// SecretsWatched reports whether pilot reads the Secrets of namespace ns
// (Input.SecretNamespace): a credentialName in a namespace it does not
// read is never served.
func (s *Snapshot) SecretsWatched(ns string) bool {
	return s.secretNS == "*" || (s.secretNS != "" && s.secretNS == ns)
}

// GatewayServerCredential resolves the credentialName of a Gateway server
// for a gateway workload in namespace ns, as the generator serves it:
// nil, nil when the server names no credential.
func (s *Snapshot) GatewayServerCredential(ns string, tls *networkingapi.ServerTLSSettings) (*credential.Credential, error) {
	if tls.GetCredentialName() == "" {
		return nil, nil
	}
	if !s.SecretsWatched(ns) {
		return nil, fmt.Errorf("pilot does not read Secrets in namespace %s, where the gateway runs (mesh-pilot --gateway-secret-namespace; it reads %q)", ns, s.secretNS)
	}
	needCA := tls.Mode == networkingapi.ServerTLSSettings_MUTUAL || tls.Mode == networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL
	return credential.Lookup(func(name string) *corev1.Secret { return s.Secret(ns, name) }, ns, tls.CredentialName, needCA)
}

// GatewayCredentialProblems lists the servers of gw that its gateway
// workloads do not serve because of their credentialName, one line each
// naming the field, the namespace and the reason; empty when every
// credential resolves (or no workload runs the Gateway).
func (s *Snapshot) GatewayCredentialProblems(gw *networkingv1.Gateway) []string {
	if len(gw.Spec.Selector) == 0 {
		return nil
	}
	nss := map[string]bool{}
	for _, p := range s.in.Pods {
		if p.DeletionTimestamp == nil && selects(gw.Spec.Selector, p.Labels) {
			nss[p.Namespace] = true
		}
	}
	var namespaces []string
	for ns := range nss {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var out []string
	for i, srv := range gw.Spec.Servers {
		switch srv.GetTls().GetMode() {
		case networkingapi.ServerTLSSettings_PASSTHROUGH, networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH, networkingapi.ServerTLSSettings_ISTIO_MUTUAL:
			continue // the gateway holds no certificate of its own for these
		}
		for _, ns := range namespaces {
			if _, err := s.GatewayServerCredential(ns, srv.GetTls()); err != nil {
				out = append(out, fmt.Sprintf("spec.servers[%d].tls.credentialName %q (gateway in %s): %v", i, srv.GetTls().GetCredentialName(), ns, err))
			}
		}
	}
	return out
}

// GatewayClientCredential resolves a DestinationRule's tls.credentialName
// (the client certificate a gateway presents when it originates TLS, and
// the CA it checks the server against) for a gateway in namespace ns.
func (s *Snapshot) GatewayClientCredential(ns, credentialName string) (*credential.Credential, error) {
	if !s.SecretsWatched(ns) {
		return nil, fmt.Errorf("pilot does not read Secrets in namespace %s, where the gateway runs (mesh-pilot --gateway-secret-namespace; it reads %q)", ns, s.secretNS)
	}
	return credential.LookupClient(func(name string) *corev1.Secret { return s.Secret(ns, name) }, ns, credentialName)
}
