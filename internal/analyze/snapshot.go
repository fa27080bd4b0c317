package analyze

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/resource"
	"mesh.dev/mesh/internal/validation"
)

// DomainSuffix is the cluster DNS domain short host names expand into.
const DomainSuffix = "cluster.local"

// RootNamespace is the mesh's configuration root: a Sidecar there without a
// selector applies to every namespace.
const RootNamespace = "mesh-system"

// Snapshot is every object analysis sees, with indexes built once.
type Snapshot struct {
	Resources []*Resource
	// Mesh is the mesh-wide configuration; nil means the defaults.
	Mesh   *Mesh
	byKind map[string][]*Resource

	namespaces     map[string]*corev1.Namespace
	knownNS        map[string]bool
	services       []*Service
	servicesByHost map[string]*Service
	servicesByNS   map[string][]*Service
	// servicesBySel holds each Service with a selector under one of its
	// selector's labels, so a workload finds the Services that may select
	// it through its own labels instead of testing every Service in its
	// namespace.
	servicesBySel  map[labelKey][]*Service
	serviceEntries []*serviceEntryHost
	workloads      []*Workload
	labelIndex     map[labelKey][]*Workload
	workloadsByNS  map[string][]*Workload
	drByHost       map[string][]*Resource
	drOrder        drOrder
}

// Service is a Kubernetes Service with its fully qualified host name.
type Service struct {
	*Resource
	Service *corev1.Service
	Host    string
}

// Workload is something that runs pods: a Pod, or the pod template of a
// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob.
type Workload struct {
	*Resource
	Labels         map[string]string
	Annotations    map[string]string
	ServiceAccount string
	Containers     []string // regular and init containers
	Pod            *corev1.Pod
	Template       *corev1.PodTemplateSpec
}

// IsPod reports whether the workload is a running Pod (not a template).
func (w *Workload) IsPod() bool { return w.Pod != nil }

type labelKey struct{ ns, k, v string }

// BuildOptions control how raw objects become a snapshot.
type BuildOptions struct {
	// DefaultNamespace is given to namespaced objects read without one.
	DefaultNamespace string
}

// Build decodes raw objects into a snapshot. Later objects replace earlier
// ones with the same kind, namespace and name, as applying them would.
func Build(raws []*resource.Raw, opts BuildOptions) (*Snapshot, error) {
	b := NewBuilder(opts)
	for i, raw := range raws {
		raw.Seq = i
	}
	if err := b.Add(raws); err != nil {
		return nil, err
	}
	return b.Snapshot(), nil
}

// Builder collects decoded objects from several goroutines and makes a
// snapshot of them.
type Builder struct {
	opts   BuildOptions
	mu     sync.Mutex
	byKey  map[resourceKey]*Resource
	labels *labelMaps
}

// NewBuilder returns an empty Builder.
func NewBuilder(opts BuildOptions) *Builder {
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	return &Builder{opts: opts, byKey: map[resourceKey]*Resource{}, labels: newLabelMaps()}
}

// Add decodes raws and adds them; it is safe to call from several
// goroutines. The raw maps are released once decoded, so a caller
// streaming files never holds more than a few of them at once. Among
// objects with the same identity the one with the highest Seq wins.
func (b *Builder) Add(raws []*resource.Raw) error {
	decoded := make([]*Resource, 0, len(raws))
	for _, raw := range raws {
		r, err := decodeRaw(raw, b.opts.DefaultNamespace)
		if err != nil {
			return err
		}
		r.seq = raw.Seq
		b.labels.shareObject(r)
		raw.Object = nil
		decoded = append(decoded, r)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range decoded {
		if old, ok := b.byKey[r.key()]; ok && old.seq > r.seq {
			continue
		}
		b.byKey[r.key()] = r
	}
	return nil
}

// Snapshot indexes what was added.
func (b *Builder) Snapshot() *Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &Snapshot{}
	s.Resources = make([]*Resource, 0, len(b.byKey))
	for _, r := range b.byKey {
		s.Resources = append(s.Resources, r)
	}
	sort.Slice(s.Resources, func(i, j int) bool { return s.Resources[i].seq < s.Resources[j].seq })
	s.index()
	return s
}

func decodeRaw(raw *resource.Raw, defaultNS string) (*Resource, error) {
	gv, err := schema.ParseGroupVersion(raw.APIVersion())
	if err != nil {
		return nil, &resource.ParseError{File: raw.Source.File, Line: raw.Source.Line, Err: fmt.Errorf("apiVersion %q: %v", raw.APIVersion(), err)}
	}
	kind := raw.Kind()
	if !clusterScoped[kind] && raw.Namespace() == "" {
		raw.SetNamespace(defaultNS)
	}
	r := &Resource{Group: gv.Group, Version: gv.Version, Kind: kind, Source: raw.Source}
	gvk := gv.WithKind(kind)
	if validation.Supported(gvk) {
		d, err := validation.Decode(raw.Object)
		if err != nil {
			return nil, &resource.ParseError{File: raw.Source.File, Line: raw.Source.Line, Err: err}
		}
		r.Decoded = d
		r.Object = d.Object
		r.Meta = metaOf(d.Object)
	} else if obj, err := decodeKube(kind, gv.Group, raw.Object); obj != nil || err != nil {
		if err != nil {
			return nil, &resource.ParseError{File: raw.Source.File, Line: raw.Source.Line, Err: fmt.Errorf("%s %q: %v", kind, raw.Name(), err)}
		}
		r.Object = obj
		r.Meta = metaOf(obj)
	} else {
		r.Meta = &metav1.ObjectMeta{}
		if md := raw.Metadata(); md != nil {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(md, r.Meta); err != nil {
				return nil, &resource.ParseError{File: raw.Source.File, Line: raw.Source.Line, Err: fmt.Errorf("%s metadata: %v", kind, err)}
			}
		}
	}
	r.Name, r.Namespace = r.Meta.Name, r.Meta.Namespace
	if r.Meta.Name == "" && r.Meta.GenerateName == "" {
		return nil, &resource.ParseError{File: raw.Source.File, Line: raw.Source.Line, Err: fmt.Errorf("%s has no metadata.name", kind)}
	}
	return r, nil
}

func metaOf(obj runtime.Object) *metav1.ObjectMeta {
	if m, ok := obj.(interface{ GetObjectMeta() metav1.Object }); ok {
		if om, ok := m.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return om
		}
	}
	return &metav1.ObjectMeta{}
}

// ByKind returns the resources of one kind ("VirtualService", "Service"...),
// in input order.
func (s *Snapshot) ByKind(kind string) []*Resource { return s.byKind[kind] }

func (s *Snapshot) index() {
	s.byKind = map[string][]*Resource{}
	s.namespaces = map[string]*corev1.Namespace{}
	s.knownNS = map[string]bool{}
	s.servicesByHost = map[string]*Service{}
	s.servicesByNS = map[string][]*Service{}
	s.servicesBySel = map[labelKey][]*Service{}
	s.labelIndex = map[labelKey][]*Workload{}
	s.workloadsByNS = map[string][]*Workload{}
	for _, r := range s.Resources {
		s.byKind[r.kindKey()] = append(s.byKind[r.kindKey()], r)
		if r.Namespace != "" {
			s.knownNS[r.Namespace] = true
		}
		switch o := r.Object.(type) {
		case *corev1.Namespace:
			s.namespaces[r.Name] = o
			s.knownNS[r.Name] = true
		case *corev1.Service:
			svc := &Service{Resource: r, Service: o, Host: r.Name + "." + r.Namespace + ".svc." + DomainSuffix}
			s.services = append(s.services, svc)
			s.servicesByHost[svc.Host] = svc
			s.servicesByNS[r.Namespace] = append(s.servicesByNS[r.Namespace], svc)
			if k, ok := minKey(o.Spec.Selector); ok {
				lk := labelKey{r.Namespace, k, o.Spec.Selector[k]}
				s.servicesBySel[lk] = append(s.servicesBySel[lk], svc)
			}
		case *corev1.Pod:
			s.addWorkload(&Workload{Resource: r, Labels: o.Labels, Annotations: o.Annotations, ServiceAccount: o.Spec.ServiceAccountName, Containers: containerNames(&o.Spec), Pod: o})
		default:
			if t := podTemplate(r.Object); t != nil {
				s.addWorkload(&Workload{Resource: r, Labels: t.Labels, Annotations: t.Annotations, ServiceAccount: t.Spec.ServiceAccountName, Containers: containerNames(&t.Spec), Template: t})
			}
		}
	}
	s.indexServiceEntries()
	s.indexDestinationRules()
}

func (s *Snapshot) addWorkload(w *Workload) {
	s.workloads = append(s.workloads, w)
	s.workloadsByNS[w.Namespace] = append(s.workloadsByNS[w.Namespace], w)
	for k, v := range w.Labels {
		lk := labelKey{w.Namespace, k, v}
		s.labelIndex[lk] = append(s.labelIndex[lk], w)
	}
}

func containerNames(spec *corev1.PodSpec) []string {
	names := make([]string, 0, len(spec.Containers)+len(spec.InitContainers))
	for _, c := range spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// podTemplate returns the pod template of a workload controller, or nil.
func podTemplate(obj runtime.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	case *appsv1.ReplicaSet:
		if len(o.OwnerReferences) > 0 {
			return nil // owned by a Deployment that is already counted
		}
		return &o.Spec.Template
	case *batchv1.Job:
		return &o.Spec.Template
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template
	}
	return nil
}

// Namespace returns the Namespace object named ns, or nil when the snapshot
// does not have it.
func (s *Snapshot) Namespace(ns string) *corev1.Namespace { return s.namespaces[ns] }

// NamespaceKnown reports whether ns exists as a Namespace object or holds
// any object in the snapshot.
func (s *Snapshot) NamespaceKnown(ns string) bool { return s.knownNS[ns] }

// HasNamespaceObjects reports whether the snapshot has Namespace objects at
// all (it does when read from a cluster).
func (s *Snapshot) HasNamespaceObjects() bool { return len(s.namespaces) > 0 }

// Services returns every Kubernetes Service.
func (s *Snapshot) Services() []*Service { return s.services }

// ServicesIn returns the Services of one namespace.
func (s *Snapshot) ServicesIn(ns string) []*Service { return s.servicesByNS[ns] }

// Workloads returns every Pod and pod template.
func (s *Snapshot) Workloads() []*Workload { return s.workloads }

// WorkloadsIn returns the Pods and pod templates of one namespace.
func (s *Snapshot) WorkloadsIn(ns string) []*Workload { return s.workloadsByNS[ns] }

// SelectWorkloads returns the workloads in ns whose labels include all of
// selector; an empty selector selects every workload in ns. ns "" means
// every namespace.
func (s *Snapshot) SelectWorkloads(ns string, selector map[string]string) []*Workload {
	if len(selector) == 0 {
		if ns == "" {
			return s.workloads
		}
		return s.workloadsByNS[ns]
	}
	if ns == "" {
		var out []*Workload
		for n := range s.workloadsByNS {
			out = append(out, s.SelectWorkloads(n, selector)...)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
		return out
	}
	var smallest []*Workload
	first := true
	for k, v := range selector {
		b := s.labelIndex[labelKey{ns, k, v}]
		if first || len(b) < len(smallest) {
			smallest, first = b, false
		}
		if len(smallest) == 0 {
			return nil
		}
	}
	var out []*Workload
	for _, w := range smallest {
		if LabelsMatch(selector, w.Labels) {
			out = append(out, w)
		}
	}
	return out
}

// LabelsMatch reports whether labels has every key and value of selector.
func LabelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ServicesFor returns the Services in the workload's namespace whose
// selectors select it, in input order.
func (s *Snapshot) ServicesFor(w *Workload) []*Service {
	var out []*Service
	for k, v := range w.Labels {
		for _, svc := range s.servicesBySel[labelKey{w.Namespace, k, v}] {
			if LabelsMatch(svc.Service.Spec.Selector, w.Labels) {
				out = append(out, svc)
			}
		}
	}
	if len(out) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	}
	return out
}

// minKey returns the smallest key of a non-empty map.
func minKey(m map[string]string) (string, bool) {
	first, found := "", false
	for k := range m {
		if !found || k < first {
			first, found = k, true
		}
	}
	return first, found
}

// ServiceWorkloads returns the workloads a Service selects.
func (s *Snapshot) ServiceWorkloads(svc *Service) []*Workload {
	if len(svc.Service.Spec.Selector) == 0 {
		return nil
	}
	return s.SelectWorkloads(svc.Namespace, svc.Service.Spec.Selector)
}

// ResolveHost expands a host as written in a resource of namespace ns into
// a fully qualified name: "reviews" becomes reviews.ns.svc.cluster.local,
// and "reviews.other" or "reviews.other.svc" are completed likewise.
func ResolveHost(host, ns string) string {
	if strings.HasPrefix(host, "*") {
		return host
	}
	switch strings.Count(host, ".") {
	case 0:
		return host + "." + ns + ".svc." + DomainSuffix
	case 1:
		if _, ok := strings.CutSuffix(host, "."+DomainSuffix); !ok {
			return host + ".svc." + DomainSuffix
		}
	case 2:
		if strings.HasSuffix(host, ".svc") {
			return host + "." + DomainSuffix
		}
	}
	return host
}
