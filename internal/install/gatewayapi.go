package install

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/version"

	"mesh.dev/mesh/internal/kube"
)

// The Gateway API CRDs carry their release and channel in these
// annotations (sigs.k8s.io/gateway-api/pkg/consts).
const (
	gatewayAPIGroup         = "gateway.networking.k8s.io"
	annotationBundleVersion = "gateway.networking.k8s.io/bundle-version"
	annotationChannel       = "gateway.networking.k8s.io/channel"
)

// IsGatewayAPICRD reports whether o is the CRD of a Gateway API kind.
func IsGatewayAPICRD(o *unstructured.Unstructured) bool {
	if o.GetKind() != "CustomResourceDefinition" {
		return false
	}
	g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
	return g == gatewayAPIGroup
}

// GatewayAPIVerdict is what the install does with a Gateway API CRD the
// cluster already has.
type GatewayAPIVerdict struct {
	// Ours: the CRD is mesh's own (an earlier install); it is applied.
	Ours bool
	// LeftAlone: another installation's CRD of the same channel at the
	// same major version and at least the release mesh ships; the install
	// keeps it as it is, since the standard channel only ever adds.
	LeftAlone bool
	// Conflict says why another installation's CRD cannot be kept nor
	// replaced ("" when there is none).
	Conflict string
	// Channel and Version are the live CRD's annotations.
	Channel, Version string
}

// JudgeGatewayAPICRD compares a live Gateway API CRD with the one the
// manifest brings (want).
func JudgeGatewayAPICRD(want, live *unstructured.Unstructured) GatewayAPIVerdict {
	v := GatewayAPIVerdict{
		Channel: live.GetAnnotations()[annotationChannel],
		Version: live.GetAnnotations()[annotationBundleVersion],
	}
	if live.GetLabels()[kube.LabelPartOf] == kube.PartOfMesh {
		v.Ours = true
		return v
	}
	wantChannel := want.GetAnnotations()[annotationChannel]
	wantVersion := want.GetAnnotations()[annotationBundleVersion]
	if v.Version == "" || v.Channel == "" {
		v.Conflict = fmt.Sprintf("it has no %s/%s annotations, so its release is unknown (mesh ships %s %s)",
			annotationBundleVersion, annotationChannel, wantVersion, wantChannel)
		return v
	}
	if v.Channel != wantChannel {
		v.Conflict = fmt.Sprintf("it is the %s channel (%s); mesh ships the %s channel and replacing it would drop the %s fields",
			v.Channel, v.Version, wantChannel, v.Channel)
		return v
	}
	have, err := version.ParseSemantic(v.Version)
	if err != nil {
		v.Conflict = fmt.Sprintf("its bundle version %q is not a release version (mesh ships %s)", v.Version, wantVersion)
		return v
	}
	ours := version.MustParseSemantic(wantVersion)
	switch {
	case have.Major() != ours.Major():
		v.Conflict = fmt.Sprintf("it is %s, another major version than mesh's %s", v.Version, wantVersion)
	case have.LessThan(ours):
		v.Conflict = fmt.Sprintf("it is %s, older than the %s mesh is built for", v.Version, wantVersion)
	default:
		v.LeftAlone = true
	}
	return v
}

// GatewayAPIRemedy says what to do about a conflicting Gateway API CRD.
func GatewayAPIRemedy(wantVersion string) string {
	return fmt.Sprintf("upgrade the Gateway API CRDs to the standard channel %s or later (kubectl apply --server-side of its standard-install.yaml), "+
		"or delete them so mesh installs its own, or keep them as they are with --set values.base.enableGatewayAPICRDs=false", wantVersion)
}
