package validation

import (
	"encoding/json"
	"fmt"
	"sort"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	telemetry "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// Validate checks the meaning of a typed Istio resource (one returned by
// Decode, or any istio.io/client-go networking/v1 or security/v1 object).
// errs make the resource unusable; warnings point at likely mistakes.
func Validate(obj runtime.Object) (errs, warnings []FieldError) {
	l := &list{}
	switch o := obj.(type) {
	case *networking.VirtualService:
		validateMeta(l, &o.ObjectMeta)
		validateVirtualService(l, o)
	case *networking.DestinationRule:
		validateMeta(l, &o.ObjectMeta)
		validateDestinationRule(l, o)
	case *networking.Gateway:
		validateMeta(l, &o.ObjectMeta)
		validateGateway(l, o)
	case *networking.ServiceEntry:
		validateMeta(l, &o.ObjectMeta)
		validateServiceEntry(l, o)
	case *networking.Sidecar:
		validateMeta(l, &o.ObjectMeta)
		validateSidecar(l, o)
	case *networking.WorkloadEntry:
		validateMeta(l, &o.ObjectMeta)
		validateWorkloadEntry(l, &o.Spec, "spec")
	case *security.PeerAuthentication:
		validateMeta(l, &o.ObjectMeta)
		validatePeerAuthentication(l, o)
	case *security.AuthorizationPolicy:
		validateMeta(l, &o.ObjectMeta)
		validateAuthorizationPolicy(l, o)
	case *security.RequestAuthentication:
		validateMeta(l, &o.ObjectMeta)
		validateRequestAuthentication(l, o)
	case *telemetry.Telemetry:
		validateMeta(l, &o.ObjectMeta)
		validateTelemetry(l, o)
	case *meshnet.MetaRoute:
		validateMeta(l, &o.ObjectMeta)
		validateMetaRoute(l, o)
	default:
		l.err("", "unsupported resource type %T", obj)
	}
	sortErrors(l.errs)
	sortErrors(l.warns)
	return l.errs, l.warns
}

// sortErrors orders errors by field so output is stable whatever the map
// iteration order was.
func sortErrors(errs []FieldError) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
}

// ValidateJSON decodes and checks one resource given as JSON (the form an
// admission request carries). Schema errors come first in errs; deprecated
// fields are reported as warnings. err is set only when the JSON is not an
// object or the kind is not supported.
func ValidateJSON(raw []byte) (errs, warnings []FieldError, err error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, nil, fmt.Errorf("decode resource: %w", err)
	}
	normalizeNumbers(obj)
	return ValidateMap(obj)
}

// ValidateMap is ValidateJSON for an already-decoded generic object.
func ValidateMap(obj map[string]any) (errs, warnings []FieldError, err error) {
	d, err := Decode(obj)
	if err != nil {
		return nil, nil, err
	}
	errs, warnings = Validate(d.Object)
	return append(d.SchemaErrors, errs...), append(d.Deprecated, warnings...), nil
}

// normalizeNumbers turns encoding/json's float64 into int64 where the value
// is whole, matching what the YAML reader produces.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
	case float64:
		if t == float64(int64(t)) {
			return int64(t)
		}
	}
	return v
}

func validateMeta(l *list, m *metav1.ObjectMeta) {
	if m.Name == "" && m.GenerateName == "" {
		l.err("metadata.name", "name is required")
	} else if m.Name != "" {
		for _, msg := range dns1123Subdomain(m.Name) {
			l.err("metadata.name", "invalid name %q: %s", m.Name, msg)
		}
	}
	if m.Namespace != "" {
		for _, msg := range dns1123Label(m.Namespace) {
			l.err("metadata.namespace", "invalid namespace %q: %s", m.Namespace, msg)
		}
	}
	validateLabels(l, m.Labels, "metadata.labels")
}

func validateLabels(l *list, labels map[string]string, path string) {
	for k, v := range labels {
		for _, msg := range qualifiedName(k) {
			l.err(key(path, k), "invalid label key: %s", msg)
		}
		for _, msg := range labelValue(v) {
			l.err(key(path, k), "invalid label value %q: %s", v, msg)
		}
	}
}
