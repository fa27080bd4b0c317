package validation

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// MeshNetworkingGroup is the API group of mesh's own networking kinds.
const MeshNetworkingGroup = meshnet.GroupName

// RetryOn are the conditions a MetaRoute's retries.retryOn may name, as
// mesh-proxy's generic_proxy router retries them.
var RetryOn = []string{"connect-failure", "reset", "timeout"}

// metaRouteGVK is MetaRoute's group/version/kind.
var metaRouteGVK = meshnet.SchemeGroupVersion.WithKind(meshnet.Kind)

func isMetaRoute(gvk schema.GroupVersionKind) bool { return gvk == metaRouteGVK }

// decodeMetaRoute builds a MetaRoute from a generic object, reporting
// every field the type does not have (with its path) and values of the
// wrong type.
func decodeMetaRoute(obj map[string]any) (*Decoded, error) {
	var errs []FieldError
	for _, k := range sortedKeys(obj) {
		switch k {
		case "apiVersion", "kind", "status", "metadata":
		case "spec":
			errs = append(errs, unknownFields(reflect.TypeOf(meshnet.MetaRouteSpec{}), obj[k], "spec")...)
		default:
			errs = append(errs, FieldError{Field: k, Message: fmt.Sprintf("unknown field %q: a MetaRoute has apiVersion, kind, metadata and spec", k)})
		}
	}
	out := &meshnet.MetaRoute{}
	raw, err := json.Marshal(obj)
	if err == nil {
		err = json.Unmarshal(raw, out)
	}
	if err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			errs = append(errs, FieldError{Field: te.Field, Message: fmt.Sprintf("expected %s, got a JSON %s", te.Type, te.Value)})
		} else {
			errs = append(errs, FieldError{Message: msg})
		}
	}
	out.SetGroupVersionKind(metaRouteGVK)
	sortErrors(errs)
	return &Decoded{Object: out, SchemaErrors: errs}, nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

// unknownFields walks v (decoded YAML or JSON) along Go type t and
// reports the keys t has no json field for.
func unknownFields(t reflect.Type, v any, path string) []FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []FieldError
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a type error, reported by the decoder
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" && f.IsExported() {
				fields[name] = f.Type
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				out = append(out, FieldError{Field: path + "." + k, Message: fmt.Sprintf("unknown field %q: expected one of %s", k, strings.Join(names, ", "))})
				continue
			}
			out = append(out, unknownFields(ft, m[k], path+"."+k)...)
		}
	case reflect.Slice:
		l, _ := v.([]any)
		for i, e := range l {
			out = append(out, unknownFields(t.Elem(), e, idx(path, i))...)
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for _, k := range sortedKeys(m) {
			out = append(out, unknownFields(t.Elem(), m[k], key(path, k))...)
		}
	}
	return out
}

// ParseTimeout reads a MetaRoute timeout ("1.5s", "300ms"; "0s" for none).
func ParseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: expected a duration such as 1.5s or 300ms", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return d, nil
}

func validateMetaRoute(l *list, o *meshnet.MetaRoute) {
	s := &o.Spec
	validateExportTo(l, s.ExportTo, "spec.exportTo")
	if len(s.Hosts) == 0 {
		l.err("spec.hosts", "a MetaRoute needs at least one host")
	}
	for i, h := range s.Hosts {
		p := idx("spec.hosts", i)
		if h == "*" {
			l.err(p, "the wildcard host \"*\" cannot be used in a MetaRoute; name the services")
			continue
		}
		validateHost(l, h, p, true)
	}
	if len(s.Routes) == 0 {
		l.err("spec.routes", "a MetaRoute needs at least one route")
	}
	names := map[string]int{}
	for i := range s.Routes {
		r := &s.Routes[i]
		p := idx("spec.routes", i)
		if r.Name != "" {
			if j, ok := names[r.Name]; ok {
				l.err(p+".name", "route name %q is used by spec.routes[%d] too", r.Name, j)
			}
			names[r.Name] = i
		}
		if r.Match != nil {
			for _, k := range slices.Sorted(maps.Keys(r.Match.Attributes)) {
				ap := key(p+".match.attributes", k)
				if k == "" {
					l.err(ap, "an attribute name must not be empty: use method, service or a metadata key")
				}
				sm := r.Match.Attributes[k]
				set := 0
				for _, v := range []string{sm.Exact, sm.Prefix, sm.Regex} {
					if v != "" {
						set++
					}
				}
				if set != 1 {
					l.err(ap, "set exactly one of exact, prefix, regex (%d are set)", set)
				}
				if sm.Regex != "" {
					validateRegex(l, sm.Regex, ap+".regex")
				}
			}
		}
		if len(r.Route) == 0 {
			l.err(p+".route", "a route needs at least one destination")
		}
		var total int64
		for j, d := range r.Route {
			dp := idx(p+".route", j)
			validateMetaDestination(l, &d.Destination, dp+".destination")
			if d.Weight < 0 {
				l.err(dp+".weight", "weight %d must not be negative", d.Weight)
			}
			total += int64(d.Weight)
		}
		if len(r.Route) > 1 && total == 0 {
			l.err(p+".route", "the route has several destinations but no weights: set weights that say how to split the traffic")
		}
		if r.Timeout != "" {
			if _, err := ParseTimeout(r.Timeout); err != nil {
				l.err(p+".timeout", "%v", err)
			}
		}
		if rt := r.Retries; rt != nil {
			if rt.Attempts < 0 {
				l.err(p+".retries.attempts", "attempts %d must not be negative", rt.Attempts)
			}
			for _, c := range strings.Split(rt.RetryOn, ",") {
				c = strings.TrimSpace(c)
				if c != "" && !slices.Contains(RetryOn, c) {
					l.err(p+".retries.retryOn", "unknown retry condition %q: expected a comma-separated list of %s", c, strings.Join(RetryOn, ", "))
				}
			}
		}
		if r.Mirror != nil {
			validateMetaDestination(l, r.Mirror, p+".mirror")
			l.warn(p+".mirror", "mirror is not carried out: mesh-proxy's generic_proxy router cannot mirror requests (the route works without it)")
		}
		if r.MirrorPercentage != nil {
			validatePercent(l, r.MirrorPercentage.Value, p+".mirrorPercentage.value")
			if r.Mirror == nil {
				l.err(p+".mirrorPercentage", "mirrorPercentage needs a mirror")
			}
		}
	}
}

func validateMetaDestination(l *list, d *meshnet.Destination, path string) {
	if d.Host == "" {
		l.err(path+".host", "a destination needs a host")
	} else {
		validateHost(l, d.Host, path+".host", false)
	}
	if d.Subset != "" {
		for _, msg := range dns1123Label(d.Subset) {
			l.err(path+".subset", "invalid subset name %q: %s", d.Subset, msg)
		}
	}
	if d.Port != nil {
		if d.Port.Number <= 0 || d.Port.Number > 65535 {
			l.err(path+".port.number", "port %d is out of range: expected 1-65535", d.Port.Number)
		}
	}
}
