package analyzers

import (
	"fmt"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/analyze"
)

// MTLSConflicts reports DestinationRules whose TLS mode disagrees with the
// PeerAuthentication in force on the host's workloads (IST0113): clients
// sending plaintext (or their own TLS) to STRICT servers are refused, and
// clients sending mesh mTLS to servers with mTLS DISABLEd are not
// understood.
type MTLSConflicts struct{}

// Metadata describes the analyzer.
func (*MTLSConflicts) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "destinationrule.MTLSConflicts", Description: "Checks DestinationRule TLS modes against the PeerAuthentication of the host's workloads",
		Codes: []*analyze.MessageType{analyze.MTLSPolicyConflict}}
}

// Analyze runs the checks.
func (*MTLSConflicts) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("DestinationRule") {
		dr, ok := r.Object.(*networking.DestinationRule)
		if !ok {
			continue
		}
		mode := dr.Spec.GetTrafficPolicy().GetTls().GetMode()
		if dr.Spec.GetTrafficPolicy().GetTls() == nil {
			continue
		}
		h, ok := ctx.LookupHost(dr.Spec.Host, r.Namespace)
		if !ok || h.Service == nil {
			continue
		}
		wantMTLS := mode == networkingapi.ClientTLSSettings_ISTIO_MUTUAL
		for _, w := range ctx.ServiceWorkloads(h.Service) {
			pa, peer := PeerMode(ctx, w)
			if pa == nil {
				continue
			}
			if (!wantMTLS && peer == securityapi.PeerAuthentication_MutualTLS_STRICT) ||
				(wantMTLS && peer == securityapi.PeerAuthentication_MutualTLS_DISABLE) {
				ctx.Report(analyze.MTLSPolicyConflict, r, "spec.trafficPolicy.tls.mode",
					"A DestinationRule and Policy are in conflict with regards to mTLS for host %s. The DestinationRule %q specifies that mTLS must be %t but the Policy object %q specifies %s.",
					h.Name, r.Name+"."+r.Namespace, wantMTLS, fmt.Sprintf("%s/%s", pa.Namespace, pa.Name), peer)
				break
			}
		}
	}
}

// PeerMode returns the PeerAuthentication that decides a workload's mTLS
// mode, and that mode: the most specific of one selecting the workload,
// its namespace's, and the root namespace's, skipping those that leave
// the mode UNSET. Without any, the mode is PERMISSIVE and the resource
// nil.
func PeerMode(ctx *analyze.Context, w *analyze.Workload) (*analyze.Resource, securityapi.PeerAuthentication_MutualTLS_Mode) {
	var selected, namespace, root *analyze.Resource
	var selMode, nsMode, rootMode securityapi.PeerAuthentication_MutualTLS_Mode
	for _, r := range ctx.ByKind("PeerAuthentication") {
		pa, ok := r.Object.(*security.PeerAuthentication)
		if !ok {
			continue
		}
		m := pa.Spec.GetMtls().GetMode()
		if m == securityapi.PeerAuthentication_MutualTLS_UNSET {
			continue
		}
		sel := pa.Spec.GetSelector().GetMatchLabels()
		switch {
		case r.Namespace == w.Namespace && len(sel) > 0 && analyze.LabelsMatch(sel, w.Labels):
			if selected == nil {
				selected, selMode = r, m
			}
		case r.Namespace == w.Namespace && len(sel) == 0:
			if namespace == nil {
				namespace, nsMode = r, m
			}
		case r.Namespace == ctx.Mesh.Root() && len(sel) == 0:
			if root == nil {
				root, rootMode = r, m
			}
		}
	}
	switch {
	case selected != nil:
		return selected, selMode
	case namespace != nil:
		return namespace, nsMode
	case root != nil:
		return root, rootMode
	}
	return nil, securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
}
