package v1alpha1

import (
	"maps"

	"k8s.io/apimachinery/pkg/runtime"
)

// DeepCopyInto copies r into out.
func (r *MetaRoute) DeepCopyInto(out *MetaRoute) {
	out.TypeMeta = r.TypeMeta
	r.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	r.Spec.DeepCopyInto(&out.Spec)
	r.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of r.
func (r *MetaRoute) DeepCopy() *MetaRoute {
	if r == nil {
		return nil
	}
	out := new(MetaRoute)
	r.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (r *MetaRoute) DeepCopyObject() runtime.Object { return r.DeepCopy() }

// DeepCopyInto copies s into out.
func (s *MetaRouteSpec) DeepCopyInto(out *MetaRouteSpec) {
	out.Hosts = append([]string(nil), s.Hosts...)
	out.ExportTo = append([]string(nil), s.ExportTo...)
	out.Routes = nil
	for _, rt := range s.Routes {
		out.Routes = append(out.Routes, rt.deepCopy())
	}
}

func (rt MetaRouteRule) deepCopy() MetaRouteRule {
	out := rt
	if rt.Match != nil {
		out.Match = &MetaRouteMatch{Attributes: maps.Clone(rt.Match.Attributes)}
	}
	out.Route = nil
	for _, d := range rt.Route {
		d.Destination = d.Destination.deepCopy()
		out.Route = append(out.Route, d)
	}
	if rt.Retries != nil {
		r := *rt.Retries
		out.Retries = &r
	}
	if rt.Mirror != nil {
		m := rt.Mirror.deepCopy()
		out.Mirror = &m
	}
	if rt.MirrorPercentage != nil {
		p := *rt.MirrorPercentage
		out.MirrorPercentage = &p
	}
	return out
}

func (d Destination) deepCopy() Destination {
	if d.Port != nil {
		p := *d.Port
		d.Port = &p
	}
	return d
}

// DeepCopyObject implements runtime.Object.
func (l *MetaRouteList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &MetaRouteList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopy())
	}
	return out
}
