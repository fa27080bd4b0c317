package analyzers

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/version"
	kubeversion "k8s.io/apimachinery/pkg/version"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwconsts "sigs.k8s.io/gateway-api/pkg/consts"

	"mesh.dev/mesh/internal/analyze"
)

// GatewayAPICRDs checks the Gateway API CRDs of the kinds pilot reads
// (live: the cluster's; offline: those among the files): IST0156 when one
// does not serve v1, the only version pilot reads, so pilot sees none of
// that kind; IST0176 when its bundle-version annotation is an older
// release than the one mesh is built for, so the API server prunes the
// fields that release lacks and they never reach pilot.
type GatewayAPICRDs struct{}

// Metadata describes the analyzer.
func (*GatewayAPICRDs) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "crd.GatewayAPIVersionAnalyzer",
		Description: "Checks the Gateway API CRDs serve the version pilot reads and are not older than the release mesh is built for",
		Codes:       []*analyze.MessageType{analyze.UnsupportedGatewayAPIVersion, analyze.GatewayAPICRDVersionBelowMinimum}}
}

// gatewayAPIReadKinds are the Gateway API kinds pilot reads, at v1.
var gatewayAPIReadKinds = map[string]bool{"GatewayClass": true, "Gateway": true, "HTTPRoute": true, "GRPCRoute": true, "ReferenceGrant": true}

// Analyze runs the checks.
func (*GatewayAPICRDs) Analyze(ctx *analyze.Context) {
	minimum := version.MustParseSemantic(gwconsts.BundleVersion)
	for _, r := range ctx.ByKind("CustomResourceDefinition") {
		crd, ok := r.Object.(*apiextensionsv1.CustomResourceDefinition)
		if !ok || crd.Spec.Group != gwv1.GroupName || !gatewayAPIReadKinds[crd.Spec.Names.Kind] {
			continue
		}
		var served []string
		v1 := false
		for _, v := range crd.Spec.Versions {
			if v.Served {
				served = append(served, v.Name)
				v1 = v1 || v.Name == "v1"
			}
		}
		if !v1 {
			highest := "(none served)"
			for _, v := range served {
				if highest == "(none served)" || kubeversion.CompareKubeAwareVersionStrings(v, highest) > 0 {
					highest = v
				}
			}
			ctx.Report(analyze.UnsupportedGatewayAPIVersion, r, "spec.versions",
				"The Gateway API CRD version %s is lower than the minimum version: v1 (pilot reads %s at v1 only, so it reads no %s at all); upgrade the Gateway API CRDs to the standard channel %s",
				highest, crd.Spec.Names.Kind, crd.Spec.Names.Kind, gwconsts.BundleVersion)
			continue
		}
		bundle := r.Annotations()[gwconsts.BundleVersionAnnotation]
		if bundle == "" {
			continue // not a release's CRD: nothing to compare
		}
		have, err := version.ParseSemantic(bundle)
		if err != nil || !have.LessThan(minimum) {
			continue
		}
		ctx.Report(analyze.GatewayAPICRDVersionBelowMinimum, r, "metadata.annotations",
			"Gateway API CRD %q is at version %q but mesh is built for %q: the API server drops the fields of %s that %s lacks, so pilot never sees them. Upgrade the Gateway API CRDs to satisfy the minimum version.",
			r.Name, bundle, gwconsts.BundleVersion, crd.Spec.Names.Kind, bundle)
	}
}
