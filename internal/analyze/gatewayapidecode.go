package analyze

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/enforced"
)

// gatewayAPIGroup is the Kubernetes Gateway API's group.
const gatewayAPIGroup = gwv1.GroupName

// GatewayAPIGatewayKind is the key ByKind files Gateway API Gateways
// under, so that "Gateway" stays Istio's Gateway for the analyzers that
// read it (pilot's kind table names it the same way).
const GatewayAPIGatewayKind = enforced.GatewayAPIGateway

// kindKey is the key a resource is filed under in ByKind.
func (r *Resource) kindKey() string {
	if r.Group == gatewayAPIGroup && r.Kind == "Gateway" {
		return GatewayAPIGatewayKind
	}
	return r.Kind
}

// decodeGatewayAPI decodes the Gateway API kinds pilot reads into their
// v1 types (the v1beta1 versions of these kinds have the same schema).
// There are few of these objects, so the generic converter's cost does
// not matter; fields of the wrong type are errors naming the kind.
func decodeGatewayAPI(kind string, m map[string]any) (runtime.Object, error) {
	var obj runtime.Object
	switch kind {
	case "GatewayClass":
		obj = &gwv1.GatewayClass{}
	case "Gateway":
		obj = &gwv1.Gateway{}
	case "HTTPRoute":
		obj = &gwv1.HTTPRoute{}
	case "GRPCRoute":
		obj = &gwv1.GRPCRoute{}
	case "ReferenceGrant":
		obj = &gwv1.ReferenceGrant{}
	default:
		return nil, nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, obj); err != nil {
		return nil, fmt.Errorf("%s: %v", kind, err)
	}
	return obj, nil
}

// crd decodes what the CRD analyzers read of a CustomResourceDefinition:
// its metadata, group, kind and versions (name and served), never its
// schema, which is most of a CRD's size.
func (d *kubeDecoder) crd(m map[string]any) *apiextensionsv1.CustomResourceDefinition {
	o := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: d.meta(m, "")}
	spec := d.obj(m, "spec", "")
	if spec == nil {
		return o
	}
	o.Spec.Group = d.str(spec, "group", "spec")
	if names := d.obj(spec, "names", "spec"); names != nil {
		o.Spec.Names.Kind = d.str(names, "kind", "spec.names")
		o.Spec.Names.Plural = d.str(names, "plural", "spec.names")
	}
	for i, v := range d.list(spec, "versions", "spec") {
		p := fmt.Sprintf("spec.versions[%d]", i)
		vm, ok := v.(map[string]any)
		if !ok {
			d.fail(p, "an object", v)
			continue
		}
		o.Spec.Versions = append(o.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{
			Name: d.str(vm, "name", p), Served: d.boolean(vm, "served", p), Storage: d.boolean(vm, "storage", p),
		})
	}
	return o
}
