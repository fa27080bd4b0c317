package analyzers

import (
	"fmt"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// ServerVerification reports DestinationRules that originate TLS (SIMPLE
// or MUTUAL) without a CA to check the server's certificate against, for
// the whole host (IST0128) or one port (IST0129): anyone able to answer
// for the host is trusted.
type ServerVerification struct{}

// Metadata describes the analyzer.
func (*ServerVerification) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "destinationrule.CaCertificateAnalyzer", Description: "Checks DestinationRules that originate TLS verify the server's certificate",
		Codes: []*analyze.MessageType{analyze.NoServerCertificateVerificationDestinationLevel, analyze.NoServerCertificateVerificationPortLevel}}
}

// unverified reports whether tls originates TLS without verifying the
// server: no caCertificates, no credentialName (whose secret may carry a
// CA) and insecureSkipVerify not set to say so on purpose.
func unverified(tls *networkingapi.ClientTLSSettings) bool {
	switch tls.GetMode() {
	case networkingapi.ClientTLSSettings_SIMPLE, networkingapi.ClientTLSSettings_MUTUAL:
	default:
		return false
	}
	return tls.GetCaCertificates() == "" && tls.GetCredentialName() == "" && !tls.GetInsecureSkipVerify().GetValue()
}

// Analyze runs the checks.
func (*ServerVerification) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("DestinationRule") {
		dr, ok := r.Object.(*networking.DestinationRule)
		if !ok {
			continue
		}
		tp := dr.Spec.GetTrafficPolicy()
		if tls := tp.GetTls(); unverified(tls) {
			ctx.Report(analyze.NoServerCertificateVerificationDestinationLevel, r, "spec.trafficPolicy.tls.caCertificates",
				"DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s",
				r.Name, r.Namespace, tls.GetMode(), dr.Spec.Host)
		}
		for i, pl := range tp.GetPortLevelSettings() {
			if tls := pl.GetTls(); unverified(tls) {
				ctx.Report(analyze.NoServerCertificateVerificationPortLevel, r, fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].tls.caCertificates", i),
					"DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s at port %d",
					r.Name, r.Namespace, tls.GetMode(), dr.Spec.Host, pl.GetPort().GetNumber())
			}
		}
	}
}
