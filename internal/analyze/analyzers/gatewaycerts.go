package analyzers

import (
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/hostmatch"
)

// GatewayCredentials reports Gateway certificates shared by several
// Gateways of one workload (IST0138) and credentialNames that name no
// Secret in the gateway workload's namespace (IST0161). The second is
// judged only when the snapshot holds Secrets in that namespace (the
// cluster is not asked for Secrets, and files seldom carry them), so that
// configuration checked without its Secrets is not reported.
type GatewayCredentials struct{}

// Metadata describes the analyzer.
func (*GatewayCredentials) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "gateway.CertificateAnalyzer", Description: "Checks Gateway TLS certificates exist and are not shared between Gateways",
		Codes: []*analyze.MessageType{analyze.GatewayDuplicateCertificate, analyze.InvalidGatewayCredential, analyze.InvalidClientCredential}}
}

type certUse struct {
	r     *analyze.Resource
	field string
}

// Analyze runs the checks.
func (*GatewayCredentials) Analyze(ctx *analyze.Context) {
	secrets := map[string]*corev1.Secret{} // namespace/name
	secretNS := map[string]bool{}          // namespaces holding any Secret
	for _, s := range ctx.ByKind("Secret") {
		if s.Group == "" {
			sec, _ := s.Object.(*corev1.Secret)
			if sec == nil {
				sec = &corev1.Secret{}
			}
			secrets[s.Namespace+"/"+s.Name] = sec
			secretNS[s.Namespace] = true
		}
	}
	uses := map[string][]certUse{} // selector + certificate
	var keys []string
	gatewayNS := map[string]bool{} // namespaces gateway workloads run in
	for _, r := range ctx.ByKind("Gateway") {
		if gw, ok := r.Object.(*networking.Gateway); ok {
			for _, w := range ctx.SelectWorkloads("", gw.Spec.Selector) {
				gatewayNS[w.Namespace] = true
			}
		}
	}
	clientCredentials(ctx, secrets, secretNS, gatewayNS)
	for _, r := range ctx.ByKind("Gateway") {
		gw, ok := r.Object.(*networking.Gateway)
		if !ok {
			continue
		}
		sel := selectorKey(gw.Spec.Selector)
		workloadNS := map[string]bool{}
		for _, w := range ctx.SelectWorkloads("", gw.Spec.Selector) {
			workloadNS[w.Namespace] = true
		}
		for i, s := range gw.Spec.Servers {
			tls := s.GetTls()
			cert, field := tls.GetCredentialName(), fmt.Sprintf("spec.servers[%d].tls.credentialName", i)
			if cert == "" {
				cert, field = tls.GetServerCertificate(), fmt.Sprintf("spec.servers[%d].tls.serverCertificate", i)
			}
			if cert == "" {
				continue
			}
			k := sel + "|" + cert
			if len(uses[k]) == 0 {
				keys = append(keys, k)
			}
			uses[k] = append(uses[k], certUse{r, field})
			if tls.GetCredentialName() == "" {
				continue
			}
			for ns := range workloadNS {
				if !secretNS[ns] {
					continue
				}
				if err := checkCredential(secrets, ns, tls); err != nil {
					ctx.Report(analyze.InvalidGatewayCredential, r, field,
						"The credential referenced by the Gateway %s in namespace %s is invalid, which can cause the traffic not to work as expected: %v (the gateway workload runs in %s)",
						r.Name, r.Namespace, err, ns)
				}
			}
		}
	}
	for _, k := range keys {
		us := uses[k]
		gateways := map[*analyze.Resource]bool{}
		var names []string
		for _, u := range us {
			if !gateways[u.r] {
				gateways[u.r] = true
				names = append(names, u.r.Namespace+"/"+u.r.Name)
			}
		}
		if len(gateways) < 2 {
			continue
		}
		sort.Strings(names)
		reported := map[*analyze.Resource]bool{}
		for _, u := range us {
			if reported[u.r] {
				continue
			}
			reported[u.r] = true
			ctx.Report(analyze.GatewayDuplicateCertificate, u.r, u.field,
				"Duplicate certificate in multiple gateways [%s] may cause 404s if clients re-use HTTP2 connections: serve the hosts from one Gateway", strings.Join(names, " "))
		}
	}
}

// checkCredential judges a server's credentialName as pilot does
// (credential.Lookup): a Secret listed without its data is judged only to
// exist.
func checkCredential(secrets map[string]*corev1.Secret, ns string, tls *networkingapi.ServerTLSSettings) error {
	switch tls.GetMode() {
	case networkingapi.ServerTLSSettings_PASSTHROUGH, networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH, networkingapi.ServerTLSSettings_ISTIO_MUTUAL:
		return nil
	}
	name := credential.Name(tls.GetCredentialName())
	if s := secrets[ns+"/"+name]; s != nil && s.Data == nil {
		return nil
	}
	needCA := tls.GetMode() == networkingapi.ServerTLSSettings_MUTUAL || tls.GetMode() == networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL
	_, err := credential.Lookup(func(n string) *corev1.Secret { return secrets[ns+"/"+n] }, ns, name, needCA)
	return err
}

// clientCredentials reports the DestinationRule credentialNames (TLS
// origination, served to gateways only) that a gateway seeing the rule
// cannot use: no Secret, or an unusable one, in its namespace (MSH0005),
// judged as pilot judges them (credential.LookupClient) where the
// snapshot holds Secrets of that namespace.
func clientCredentials(ctx *analyze.Context, secrets map[string]*corev1.Secret, secretNS, gatewayNS map[string]bool) {
	var namespaces []string
	for ns := range gatewayNS {
		if secretNS[ns] {
			namespaces = append(namespaces, ns)
		}
	}
	sort.Strings(namespaces)
	for _, r := range ctx.ByKind("DestinationRule") {
		dr, ok := r.Object.(*networking.DestinationRule)
		if !ok {
			continue
		}
		type use struct{ field, name string }
		var found []use
		add := func(prefix string, tp *networkingapi.TrafficPolicy) {
			if n := tp.GetTls().GetCredentialName(); n != "" {
				found = append(found, use{prefix + ".tls.credentialName", n})
			}
			for i, pl := range tp.GetPortLevelSettings() {
				if n := pl.GetTls().GetCredentialName(); n != "" {
					found = append(found, use{fmt.Sprintf("%s.portLevelSettings[%d].tls.credentialName", prefix, i), n})
				}
			}
		}
		add("spec.trafficPolicy", dr.Spec.TrafficPolicy)
		for i, ss := range dr.Spec.Subsets {
			add(fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), ss.TrafficPolicy)
		}
		for _, u := range found {
			for _, ns := range namespaces {
				if !hostmatch.Exported(ctx.DestinationRuleExportTo(dr), r.Namespace, ns) {
					continue
				}
				if s := secrets[ns+"/"+credential.Name(u.name)]; s != nil && s.Data == nil {
					continue // listed without its data: judged only to exist
				}
				if _, err := credential.LookupClient(func(n string) *corev1.Secret { return secrets[ns+"/"+n] }, ns, u.name); err != nil {
					ctx.Report(analyze.InvalidClientCredential, r, u.field,
						"The client credential %q of DestinationRule %s in namespace %s cannot be used by the gateways in namespace %s, so their TLS origination to %s fails: %v",
						u.name, r.Name, r.Namespace, ns, dr.Spec.Host, err)
				}
			}
		}
	}
}
