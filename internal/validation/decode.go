package validation

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	telemetry "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// API groups of the resources this package understands.
const (
	NetworkingGroup = "networking.istio.io"
	SecurityGroup   = "security.istio.io"
	TelemetryGroup  = "telemetry.istio.io"
)

// kindInfo says how to build the typed object for one kind.
type kindInfo struct {
	group    string
	versions []string // accepted versions; all share the v1 schema
	build    func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message)
}

var kinds = map[string]kindInfo{
	"VirtualService": {NetworkingGroup, []string{"v1", "v1beta1", "v1alpha3"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &networking.VirtualService{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"DestinationRule": {NetworkingGroup, []string{"v1", "v1beta1", "v1alpha3"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &networking.DestinationRule{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"Gateway": {NetworkingGroup, []string{"v1", "v1beta1", "v1alpha3"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &networking.Gateway{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"ServiceEntry": {NetworkingGroup, []string{"v1", "v1beta1", "v1alpha3"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &networking.ServiceEntry{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"Sidecar": {NetworkingGroup, []string{"v1", "v1beta1", "v1alpha3"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &networking.Sidecar{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"WorkloadEntry": {NetworkingGroup, []string{"v1", "v1beta1", "v1alpha3"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &networking.WorkloadEntry{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"PeerAuthentication": {SecurityGroup, []string{"v1", "v1beta1"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &security.PeerAuthentication{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"AuthorizationPolicy": {SecurityGroup, []string{"v1", "v1beta1"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &security.AuthorizationPolicy{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"RequestAuthentication": {SecurityGroup, []string{"v1", "v1beta1"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &security.RequestAuthentication{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
	"Telemetry": {TelemetryGroup, []string{"v1", "v1alpha1"}, func() (runtime.Object, *metav1.ObjectMeta, protoreflect.Message) {
		o := &telemetry.Telemetry{}
		return o, &o.ObjectMeta, o.Spec.ProtoReflect()
	}},
}

// Supported reports whether gvk is an Istio resource this package validates.
func Supported(gvk schema.GroupVersionKind) bool {
	if isMetaRoute(gvk) {
		return true
	}
	k, ok := kinds[gvk.Kind]
	if !ok || k.group != gvk.Group {
		return false
	}
	for _, v := range k.versions {
		if v == gvk.Version {
			return true
		}
	}
	return false
}

// IsIstioGroup reports whether group is one of the Istio API groups handled
// here, or mesh's own networking.mesh.io.
func IsIstioGroup(group string) bool {
	return group == NetworkingGroup || group == SecurityGroup || group == TelemetryGroup || group == MeshNetworkingGroup
}

// Kinds lists the supported kinds as Group/Kind strings, sorted.
func Kinds() []string {
	var out []string
	for k, info := range kinds {
		out = append(out, info.group+"/"+k)
	}
	out = append(out, MeshNetworkingGroup+"/"+metaRouteGVK.Kind)
	sort.Strings(out)
	return out
}

// Decoded is a resource decoded into its istio.io/client-go type, with what
// the schema check found on the way.
type Decoded struct {
	// Object is the typed resource (*networking.VirtualService, ...). It is
	// set even when SchemaErrors is not empty, holding what could be read.
	Object runtime.Object
	// SchemaErrors are fields the API does not have, values of the wrong
	// type, and required fields that are missing.
	SchemaErrors []FieldError
	// Deprecated are fields or enum values set that the API deprecates.
	Deprecated []FieldError
}

// Decode builds the typed object for a generic resource (as decoded from
// YAML or JSON into map[string]any). It fails only for a kind or version
// this package does not support.
func Decode(obj map[string]any) (*Decoded, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	gvk := gv.WithKind(kind)
	if !Supported(gvk) {
		return nil, fmt.Errorf("unsupported resource %s", gvk)
	}
	if isMetaRoute(gvk) {
		return decodeMetaRoute(obj)
	}
	info := kinds[kind]
	out, meta, spec := info.build()
	out.GetObjectKind().SetGroupVersionKind(gvk)
	d := &decoder{}
	for _, k := range sortedKeys(obj) {
		switch k {
		case "apiVersion", "kind", "status":
		case "metadata":
			decodeMeta(d, obj[k], meta)
		case "spec":
			d.at("spec")
			d.message(spec, obj[k])
		default:
			d.fail(k, "unknown field %q: a %s has apiVersion, kind, metadata and spec", k, kind)
		}
	}
	if _, ok := obj["spec"]; !ok {
		d.at("spec")
		d.message(spec, map[string]any{})
	}
	sortErrors(d.errs)
	sortErrors(d.deprecated)
	return &Decoded{Object: out, SchemaErrors: d.errs, Deprecated: d.deprecated}, nil
}

func decodeMeta(d *decoder, v any, meta *metav1.ObjectMeta) {
	m, ok := v.(map[string]any)
	if !ok {
		if v != nil {
			d.fail("metadata", "expected an object, got %s", describe(v))
		}
		return
	}
	for _, k := range sortedKeys(m) {
		val := m[k]
		p := "metadata." + k
		switch k {
		case "name":
			meta.Name = d.str(val, p)
		case "namespace":
			meta.Namespace = d.str(val, p)
		case "generateName":
			meta.GenerateName = d.str(val, p)
		case "uid":
			meta.UID = types.UID(d.str(val, p))
		case "resourceVersion":
			meta.ResourceVersion = d.str(val, p)
		case "generation":
			d.at(p)
			if n, ok := d.integer(val, 0, 1<<62); ok {
				meta.Generation = n
			}
		case "labels":
			meta.Labels = d.strMap(val, p)
		case "annotations":
			meta.Annotations = d.strMap(val, p)
		case "creationTimestamp", "managedFields", "ownerReferences", "finalizers", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink":
			// Server-populated fields in objects read back from a cluster.
		default:
			d.fail(p, "unknown metadata field %q", k)
		}
	}
}

func (d *decoder) str(v any, path string) string {
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail(path, "expected a string, got %s", describe(v))
	}
	return s
}

func (d *decoder) strMap(v any, path string) map[string]string {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected a map of strings, got %s", describe(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, ok := e.(string)
		if !ok {
			d.fail(key(path, k), "expected a string (quote numbers and booleans), got %s", describe(e))
			continue
		}
		out[k] = s
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// KindOf returns the Kind of a typed object from this package.
func KindOf(obj runtime.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	t := fmt.Sprintf("%T", obj)
	return t[strings.LastIndex(t, ".")+1:]
}
