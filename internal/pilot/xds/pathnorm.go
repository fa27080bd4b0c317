package xds

import (
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshapi "istio.io/api/mesh/v1alpha1"
)

// pathNormalization writes meshConfig.pathNormalization into an HTTP
// connection manager as istiod does, on every HCM it builds (sidecar
// inbound and outbound, gateways): the proxy normalizes each request's path
// once, before authorization and routing, and forwards the normalized path.
//
//	NONE                      normalize_path false
//	BASE (and unset, DEFAULT) normalize_path true: RFC 3986, unreserved escapes decoded, \ → /
//	MERGE_SLASHES             and merge_slashes
//	DECODE_AND_MERGE_SLASHES  and path_with_escaped_slashes_action UNESCAPE_AND_FORWARD (%2F, %5C decoded first)
func (pc *PushContext) pathNormalization(h *hcmv3.HttpConnectionManager) {
	h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	switch pc.Snap.Mesh.GetPathNormalization().GetNormalization() {
	case meshapi.MeshConfig_ProxyPathNormalization_NONE:
		h.NormalizePath = wrapperspb.Bool(false)
	case meshapi.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		h.NormalizePath, h.MergeSlashes = wrapperspb.Bool(true), true
	case meshapi.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		h.NormalizePath, h.MergeSlashes = wrapperspb.Bool(true), true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default: // BASE, DEFAULT
		h.NormalizePath = wrapperspb.Bool(true)
	}
}
