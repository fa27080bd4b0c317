package model

import (
	"fmt"
	"sort"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/labels"

	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/hostmatch"
)

// SecretsWatched reports whether pilot reads the Secrets of namespace ns
// (Input.SecretNamespaces): a credentialName in a namespace it does not
// read is never served.
func (s *Snapshot) SecretsWatched(ns string) bool {
	return s.secretNS["*"] || s.secretNS[ns]
}

// secretsRead is nil when pilot has read the Secrets of ns, else a
// credential.NotReadError saying why not (where: why ns is asked for).
func (s *Snapshot) secretsRead(ns, where string) error {
	if s.SecretsWatched(ns) {
		return nil
	}
	return &credential.NotReadError{Namespace: ns, Where: where, Pending: s.secretPending[ns]}
}

// GatewaySecretUse is why gateways need the Secrets of one namespace.
type GatewaySecretUse struct {
	// Gateways and Grants are the Gateway API objects in the namespace
	// whose listeners' certificateRefs name its Secrets
	// (gatewayapi.SecretUse).
	gatewayapi.SecretUse
	// Workloads: gateway workloads run there (pods an Istio Gateway,
	// or one pilot made from a Gateway API Gateway, selects), which are
	// served its Secrets as credentialName.
	Workloads bool
}

// GatewaySecretNamespaces are the namespaces gateways need Secrets from,
// by namespace: where gateway workloads run and where the listeners of
// mesh's Gateway API Gateways point their certificateRefs. Pilot follows
// them (docs/gateways.md, "Which Secrets pilot reads"); the map is the
// snapshot's, not to be changed.
func (s *Snapshot) GatewaySecretNamespaces() map[string]*GatewaySecretUse {
	return s.gatewaySecret
}

func (s *Snapshot) gatewaySecretNamespaces() map[string]*GatewaySecretUse {
	out := map[string]*GatewaySecretUse{}
	use := func(ns string) *GatewaySecretUse {
		u := out[ns]
		if u == nil {
			u = &GatewaySecretUse{}
			out[ns] = u
		}
		return u
	}
	if s.GatewayAPI != nil {
		for ns, u := range s.GatewayAPI.SecretUses {
			use(ns).SecretUse = *u
		}
	}
	// Each distinct selector once: Gateways often share one, and every
	// pod is matched against each.
	seen := map[string]bool{}
	var sels []map[string]string
	for _, gw := range s.Gateways {
		sel := gw.Spec.GetSelector()
		if len(sel) == 0 {
			continue
		}
		key := labels.Set(sel).String()
		if !seen[key] {
			seen[key] = true
			sels = append(sels, sel)
		}
	}
	if len(sels) == 0 {
		return out
	}
	for _, p := range s.in.Pods {
		if p.DeletionTimestamp != nil || (out[p.Namespace] != nil && out[p.Namespace].Workloads) {
			continue
		}
		for _, sel := range sels {
			if selects(sel, p.Labels) {
				use(p.Namespace).Workloads = true
				break
			}
		}
	}
	return out
}

// GatewayServerCredential resolves the credentialName of a server of gw
// for a gateway workload in namespace ns, as the generator serves it:
// nil, nil when the server names no credential. A Secret of another
// namespace (credential.CrossNamespaceName) is served only for a Gateway
// pilot generated from a Gateway API Gateway, whose translation checked
// the ReferenceGrant allowing it; any other Gateway naming one is refused.
func (s *Snapshot) GatewayServerCredential(gw *networkingv1.Gateway, ns string, tls *networkingapi.ServerTLSSettings) (*credential.Credential, error) {
	if tls.GetCredentialName() == "" {
		return nil, nil
	}
	needCA := tls.Mode == networkingapi.ServerTLSSettings_MUTUAL || tls.Mode == networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL
	if secretNS, name, ok := credential.SplitCrossNamespace(tls.CredentialName); ok {
		if !s.generatedGateway(gw) {
			return nil, fmt.Errorf("credentialName %s names another namespace's Secret, which only Gateway API listeners may do (with a ReferenceGrant)", tls.CredentialName)
		}
		if err := s.secretsRead(secretNS, ""); err != nil {
			return nil, err
		}
		c, err := credential.Lookup(func(n string) *corev1.Secret { return s.Secret(secretNS, n) }, secretNS, name, needCA)
		if err != nil {
			return nil, err
		}
		c.Name = tls.CredentialName // the SDS resource name the listener asks for
		return c, nil
	}
	if err := s.secretsRead(ns, "where the gateway runs"); err != nil {
		return nil, err
	}
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
			if _, err := s.GatewayServerCredential(gw, ns, srv.GetTls()); err != nil {
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
	if err := s.secretsRead(ns, "where the gateway runs"); err != nil {
		return nil, err
	}
	return credential.LookupClient(func(name string) *corev1.Secret { return s.Secret(ns, name) }, ns, credentialName)
}

// generatedGateway reports whether gw is one of the Istio Gateways pilot
// made from Gateway API objects (by identity: an annotation a user can
// write proves nothing).
func (s *Snapshot) generatedGateway(gw *networkingv1.Gateway) bool {
	if s.GatewayAPI == nil {
		return false
	}
	for _, g := range s.GatewayAPI.Gateways {
		if g == gw {
			return true
		}
	}
	return false
}

// ClientCredentialProblems lists the tls.credentialNames of dr (TLS
// origination, at every level of its traffic policy) that the gateway
// workloads of a namespace seeing the rule (its exportTo) cannot use, one
// line each naming the field, the namespace and the reason (MSH0005, as
// `mesh analyze` reports it); empty when every one resolves or no gateway
// workload sees the rule. Gateway workloads are the pods a Gateway selects.
func (s *Snapshot) ClientCredentialProblems(dr *networkingv1.DestinationRule) []string {
	type use struct{ field, name string }
	var uses []use
	add := func(prefix string, tp *networkingapi.TrafficPolicy) {
		if n := tp.GetTls().GetCredentialName(); n != "" {
			uses = append(uses, use{prefix + ".tls.credentialName", n})
		}
		for i, pl := range tp.GetPortLevelSettings() {
			if n := pl.GetTls().GetCredentialName(); n != "" {
				uses = append(uses, use{fmt.Sprintf("%s.portLevelSettings[%d].tls.credentialName", prefix, i), n})
			}
		}
	}
	add("spec.trafficPolicy", dr.Spec.TrafficPolicy)
	for i, ss := range dr.Spec.Subsets {
		add(fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), ss.TrafficPolicy)
	}
	if len(uses) == 0 {
		return nil
	}
	var out []string
	for _, ns := range s.gatewayNamespaces() {
		if !hostmatch.Exported(s.DestinationRuleExportTo(dr), dr.Namespace, ns) {
			continue
		}
		for _, u := range uses {
			if _, err := s.GatewayClientCredential(ns, u.name); err != nil {
				out = append(out, fmt.Sprintf("%s %q (gateways in %s): %v", u.field, u.name, ns, err))
			}
		}
	}
	return out
}

// gatewayNamespaces lists, sorted, the namespaces of the live pods some
// Gateway selects.
func (s *Snapshot) gatewayNamespaces() []string {
	nss := map[string]bool{}
	for _, p := range s.in.Pods {
		if p.DeletionTimestamp != nil || nss[p.Namespace] {
			continue
		}
		for _, gw := range s.Gateways {
			if len(gw.Spec.Selector) > 0 && selects(gw.Spec.Selector, p.Labels) {
				nss[p.Namespace] = true
				break
			}
		}
	}
	out := make([]string, 0, len(nss))
	for ns := range nss {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
