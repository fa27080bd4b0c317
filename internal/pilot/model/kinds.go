package model

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/validation"
)

const gatewayAPIGroup = gwv1.GroupName

// Kind is one kind of object pilot reads, with everything that depends on
// the kind in one place: where it is watched, where it lands in a snapshot,
// how it is validated, which proxies a change to it reaches, and what else
// in mesh handles it. Kinds is the only list of kinds pilot keeps; code
// that needs "every kind" ranges over it.
type Kind struct {
	GVK    schema.GroupVersionKind
	Plural string // the API resource, e.g. "virtualservices"
	// CRD is true for kinds the base chart ships a CustomResourceDefinition
	// for (plural.group); pilot watches them only when the API serves them.
	CRD bool
	// Informer returns the kind's shared informer from the factories.
	Informer func(Informers) cache.SharedIndexInformer
	// Informers, when set instead of Informer, returns the several
	// informers the kind is watched through (Secrets: one per namespace
	// pilot reads them in).
	Informers func(Informers) []cache.SharedIndexInformer
	// Watched says whether the kind is watched with these factories (nil:
	// always, CRD kinds aside); a kind not watched has no objects.
	Watched func(Informers) bool
	// Classify says what an event on one object changes; nil means a
	// config change (Change{Full: true}).
	Classify func(w *Watcher, obj any) Change
	// Validate checks one object as the admission webhook and analyze do;
	// nil for kinds the API server validates itself.
	Validate func(runtime.Object) (errs, warnings []validation.FieldError)
	// Reach records which proxies a change to the kind's objects (old and
	// new versions of each changed object, changed) can reach. nil, or a
	// false result, makes the push full: a kind nobody bounded is pushed to
	// everyone rather than to no one.
	Reach Reach
	// AnalyzerKind is the kind name `mesh analyze` files the kind under
	// ("" when analyze does not read it).
	AnalyzerKind string
	// Status is how pilot writes the objects' status (what it does not
	// carry out, internal/pilot/status, and the Gateway API's status);
	// nil when it writes none. The status writer writes the kinds with
	// one, and for them an update changing only status is no config
	// change.
	Status *StatusWriter

	load    func(f Informers, in *Input) // fills the kind's Input field from the informer's cache
	objects func(*Snapshot) []metav1.Object
	put     func(in *Input, ns, name string, obj metav1.Object)
	list    func(in *Input) []metav1.Object
}

// Put sets the kind's object ns/name in in to obj (nil: removes it),
// copying the list rather than writing into one a snapshot may share.
func (k *Kind) Put(in *Input, ns, name string, obj metav1.Object) { k.put(in, ns, name, obj) }

// List returns the kind's objects in in, as read (a VirtualService that
// internal/gatewayapi made of an HTTPRoute is no object of in).
func (k *Kind) List(in *Input) []metav1.Object { return k.list(in) }

// Informers are the informer factories the kinds are watched through;
// Istio is nil when the Istio CRDs are not served, GatewayAPI when the
// Gateway API's are not.
type Informers struct {
	Kube       informers.SharedInformerFactory
	Istio      istioinformers.SharedInformerFactory
	GatewayAPI gwinformers.SharedInformerFactory
	// Mesh watches mesh's own kinds (networking.mesh.io); nil when their
	// CRDs are not served.
	Mesh dynamicinformer.DynamicSharedInformerFactory
	// Secrets watches Secrets, one factory per namespace pilot reads them
	// in (the gateways' by default), or one for every namespace when it
	// is told to; empty: no Secrets are read.
	Secrets []informers.SharedInformerFactory
}

// informers returns the informers the kind is watched through.
func (k *Kind) informers(f Informers) []cache.SharedIndexInformer {
	if k.Informers != nil {
		return k.Informers(f)
	}
	return []cache.SharedIndexInformer{k.Informer(f)}
}

// served reports whether the kind is watched with these factories: its
// API's factory is there (the Gateway API's, Istio's for the other CRDs)
// and its own Watched says so.
func (f Informers) served(k *Kind) bool {
	if k.Watched != nil && !k.Watched(f) {
		return false
	}
	switch {
	case !k.CRD:
		return true
	case k.GVK.Group == gatewayAPIGroup:
		return f.GatewayAPI != nil
	case k.GVK.Group == meshnet.GroupName:
		return f.Mesh != nil
	}
	return f.Istio != nil
}

// Reach is a kind's part of working out which proxies a config change
// reaches (see Kind.Reach); a false result means "everyone".
type Reach func(a, b *Snapshot, changed []metav1.Object, d *Delta) bool

// Objects returns the kind's objects in s.
func (k *Kind) Objects(s *Snapshot) []metav1.Object { return k.objects(s) }

// String returns the kind's name.
func (k *Kind) String() string { return k.GVK.Kind }

const (
	networkingGroup = "networking.istio.io"
	securityGroup   = "security.istio.io"
	telemetryGroup  = "telemetry.istio.io"
)

func gvk(group, version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}

// Kinds is the table of every kind pilot reads, core kinds first.
var Kinds = []*Kind{
	{
		GVK: gvk("", "v1", "Service"), Plural: "services",
		Informer: func(f Informers) cache.SharedIndexInformer { return f.Kube.Core().V1().Services().Informer() },
		Reach:    reachThroughServices, AnalyzerKind: "Service",
	},
	{
		GVK: gvk("", "v1", "Namespace"), Plural: "namespaces",
		Informer: func(f Informers) cache.SharedIndexInformer { return f.Kube.Core().V1().Namespaces().Informer() },
		// The generator reads nothing of a Namespace; it is watched for
		// the webhook's and analyze's benefit.
		Reach: reachNone, AnalyzerKind: "Namespace",
	},
	{
		GVK: gvk("discovery.k8s.io", "v1", "EndpointSlice"), Plural: "endpointslices",
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Kube.Discovery().V1().EndpointSlices().Informer()
		},
		Classify: classifyEndpointSlice,
		Reach:    reachThroughEndpoints,
	},
	{
		GVK: gvk("", "v1", "Pod"), Plural: "pods",
		Informer: func(f Informers) cache.SharedIndexInformer { return f.Kube.Core().V1().Pods().Informer() },
		Classify: classifyPod,
		Reach:    reachThroughEndpoints, AnalyzerKind: "Pod",
	},
	{
		// Secrets hold the certificates of Gateway servers (credentialName),
		// served to gateways over SDS; only kubernetes.io/tls and Opaque ones
		// reach the snapshot (credential.Served).
		GVK: gvk("", "v1", "Secret"), Plural: "secrets",
		Informers: func(f Informers) []cache.SharedIndexInformer {
			out := make([]cache.SharedIndexInformer, len(f.Secrets))
			for i, sf := range f.Secrets {
				out[i] = sf.Core().V1().Secrets().Informer()
			}
			return out
		},
		Watched: func(f Informers) bool { return len(f.Secrets) > 0 },
		Reach:   reachRouters, AnalyzerKind: "Secret",
	},
	{
		GVK: gvk(networkingGroup, "v1", "VirtualService"), Plural: "virtualservices", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Networking().V1().VirtualServices().Informer()
		},
		Status: istioStatus(func(o *networkingv1.VirtualService) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *networkingv1.VirtualService) error {
				_, err := c.Istio.NetworkingV1().VirtualServices(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachVirtualService, AnalyzerKind: "VirtualService",
	},
	{
		GVK: gvk(networkingGroup, "v1", "DestinationRule"), Plural: "destinationrules", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Networking().V1().DestinationRules().Informer()
		},
		Status: istioStatus(func(o *networkingv1.DestinationRule) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *networkingv1.DestinationRule) error {
				_, err := c.Istio.NetworkingV1().DestinationRules(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachDestinationRule, AnalyzerKind: "DestinationRule",
	},
	{
		GVK: gvk(networkingGroup, "v1", "Gateway"), Plural: "gateways", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer { return f.Istio.Networking().V1().Gateways().Informer() },
		Status: istioStatus(func(o *networkingv1.Gateway) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *networkingv1.Gateway) error {
				_, err := c.Istio.NetworkingV1().Gateways(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachRouters, AnalyzerKind: "Gateway",
	},
	{
		GVK: gvk(networkingGroup, "v1", "ServiceEntry"), Plural: "serviceentries", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Networking().V1().ServiceEntries().Informer()
		},
		Status: istioStatus(func(o *networkingv1.ServiceEntry) (any, IstioStatus) {
			return &o.Spec, IstioStatus{&o.Status.Conditions, &o.Status.ValidationMessages, &o.Status.ObservedGeneration}
		},
			func(ctx context.Context, c StatusClients, o *networkingv1.ServiceEntry) error {
				_, err := c.Istio.NetworkingV1().ServiceEntries(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachThroughServices, AnalyzerKind: "ServiceEntry",
	},
	{
		GVK: gvk(networkingGroup, "v1", "Sidecar"), Plural: "sidecars", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer { return f.Istio.Networking().V1().Sidecars().Informer() },
		Status: istioStatus(func(o *networkingv1.Sidecar) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *networkingv1.Sidecar) error {
				_, err := c.Istio.NetworkingV1().Sidecars(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachNamespace, AnalyzerKind: "Sidecar",
	},
	{
		GVK: gvk(networkingGroup, "v1", "WorkloadEntry"), Plural: "workloadentries", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Networking().V1().WorkloadEntries().Informer()
		},
		Status: istioStatus(func(o *networkingv1.WorkloadEntry) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *networkingv1.WorkloadEntry) error {
				_, err := c.Istio.NetworkingV1().WorkloadEntries(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachWorkloadEntry, AnalyzerKind: "WorkloadEntry",
	},
	{
		GVK: gvk(securityGroup, "v1", "PeerAuthentication"), Plural: "peerauthentications", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Security().V1().PeerAuthentications().Informer()
		},
		Status: istioStatus(func(o *securityv1.PeerAuthentication) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *securityv1.PeerAuthentication) error {
				_, err := c.Istio.SecurityV1().PeerAuthentications(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachNamespace, AnalyzerKind: "PeerAuthentication",
	},
	{
		GVK: gvk(securityGroup, "v1", "AuthorizationPolicy"), Plural: "authorizationpolicies", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Security().V1().AuthorizationPolicies().Informer()
		},
		Status: istioStatus(func(o *securityv1.AuthorizationPolicy) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *securityv1.AuthorizationPolicy) error {
				_, err := c.Istio.SecurityV1().AuthorizationPolicies(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachNamespace, AnalyzerKind: "AuthorizationPolicy",
	},
	{
		GVK: gvk(securityGroup, "v1", "RequestAuthentication"), Plural: "requestauthentications", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Security().V1().RequestAuthentications().Informer()
		},
		Status: istioStatus(func(o *securityv1.RequestAuthentication) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *securityv1.RequestAuthentication) error {
				_, err := c.Istio.SecurityV1().RequestAuthentications(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachNamespace, AnalyzerKind: "RequestAuthentication",
	},
	{
		// Access logging, tracing and metrics of the namespace's workloads
		// (all of them from the root namespace).
		GVK: gvk(telemetryGroup, "v1", "Telemetry"), Plural: "telemetries", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.Istio.Telemetry().V1().Telemetries().Informer()
		},
		Status: istioStatus(func(o *telemetryv1.Telemetry) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			func(ctx context.Context, c StatusClients, o *telemetryv1.Telemetry) error {
				_, err := c.Istio.TelemetryV1().Telemetries(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
				return err
			}),
		Validate: validation.Validate, Reach: reachNamespace, AnalyzerKind: "Telemetry",
	},
	{
		// mesh's own: the routes of RPC protocol ports (generic_proxy).
		// Watched through a dynamic informer whose objects are converted
		// to the typed MetaRoute as they are stored.
		GVK: meshnet.SchemeGroupVersion.WithKind(meshnet.Kind), Plural: meshnet.Plural, CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer { return metaRouteInformer(f.Mesh) },
		Status: istioStatus(func(o *meshnet.MetaRoute) (any, IstioStatus) { return &o.Spec, fields(&o.Status) },
			updateMetaRouteStatus),
		// No Reach: a MetaRoute change is a full push.
		Validate: validation.Validate, AnalyzerKind: meshnet.Kind,
	},
	{
		GVK: gvk(gatewayAPIGroup, "v1", "GatewayClass"), Plural: "gatewayclasses", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.GatewayAPI.Gateway().V1().GatewayClasses().Informer()
		},
		Status: gatewayAPIStatus(func(ctx context.Context, c gwclient.Interface, o *gwv1.GatewayClass) error {
			_, err := c.GatewayV1().GatewayClasses().UpdateStatus(ctx, o, statusUpdate)
			return err
		}),
		// No Reach: a Gateway API change is a full push (the translation
		// into Istio config, internal/gatewayapi, can touch any router).
		AnalyzerKind: "GatewayClass",
	},
	{
		GVK: gvk(gatewayAPIGroup, "v1", "Gateway"), Plural: "gateways", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.GatewayAPI.Gateway().V1().Gateways().Informer()
		},
		Status: gatewayAPIStatus(func(ctx context.Context, c gwclient.Interface, o *gwv1.Gateway) error {
			_, err := c.GatewayV1().Gateways(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
			return err
		}),
		AnalyzerKind: "Gateway.gateway.networking.k8s.io",
	},
	{
		GVK: gvk(gatewayAPIGroup, "v1", "HTTPRoute"), Plural: "httproutes", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.GatewayAPI.Gateway().V1().HTTPRoutes().Informer()
		},
		Status: gatewayAPIStatus(func(ctx context.Context, c gwclient.Interface, o *gwv1.HTTPRoute) error {
			_, err := c.GatewayV1().HTTPRoutes(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
			return err
		}),
		AnalyzerKind: "HTTPRoute",
	},
	{
		GVK: gvk(gatewayAPIGroup, "v1", "GRPCRoute"), Plural: "grpcroutes", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.GatewayAPI.Gateway().V1().GRPCRoutes().Informer()
		},
		Status: gatewayAPIStatus(func(ctx context.Context, c gwclient.Interface, o *gwv1.GRPCRoute) error {
			_, err := c.GatewayV1().GRPCRoutes(o.Namespace).UpdateStatus(ctx, o, statusUpdate)
			return err
		}),
		AnalyzerKind: "GRPCRoute",
	},
	{
		GVK: gvk(gatewayAPIGroup, "v1", "ReferenceGrant"), Plural: "referencegrants", CRD: true,
		Informer: func(f Informers) cache.SharedIndexInformer {
			return f.GatewayAPI.Gateway().V1().ReferenceGrants().Informer()
		},
		AnalyzerKind: "ReferenceGrant",
	},
}

// register joins a kind's row to the Input field its objects are read
// into and the Snapshot field they are served from. kind is the kind's
// name, qualified by its group ("Gateway.gateway.networking.k8s.io") where
// another group has a kind of that name.
func register[T metav1.Object](kind string, in func(*Input) *[]T, snap func(*Snapshot) []T) {
	var row *Kind
	name, group, qualified := strings.Cut(kind, ".")
	for _, k := range Kinds {
		if k.GVK.Kind != name || qualified && k.GVK.Group != group {
			continue
		}
		if row != nil {
			panic("model: kind " + kind + " is ambiguous; qualify it with its group")
		}
		row = k
	}
	if row == nil {
		panic("model: field for unknown kind " + kind)
	}
	row.load = func(f Informers, dst *Input) {
		for _, inf := range row.informers(f) {
			for _, o := range inf.GetStore().List() {
				if t, ok := o.(T); ok {
					*in(dst) = append(*in(dst), t)
				}
			}
		}
	}
	row.put = func(dst *Input, ns, name string, obj metav1.Object) {
		list := *in(dst)
		out := make([]T, 0, len(list)+1)
		for _, o := range list {
			if o.GetNamespace() != ns || o.GetName() != name {
				out = append(out, o)
			}
		}
		if obj != nil {
			out = append(out, obj.(T))
		}
		*in(dst) = out
	}
	row.list = func(src *Input) []metav1.Object {
		objs := *in(src)
		out := make([]metav1.Object, len(objs))
		for i, o := range objs {
			out[i] = o
		}
		return out
	}
	row.objects = func(s *Snapshot) []metav1.Object {
		objs := snap(s)
		out := make([]metav1.Object, len(objs))
		for i, o := range objs {
			out[i] = o
		}
		return out
	}
}

func init() {
	register("Service", func(in *Input) *[]*corev1.Service { return &in.Services }, func(s *Snapshot) []*corev1.Service { return s.in.Services })
	register("Namespace", func(in *Input) *[]*corev1.Namespace { return &in.Namespaces }, func(s *Snapshot) []*corev1.Namespace { return s.in.Namespaces })
	register("EndpointSlice", func(in *Input) *[]*discoveryv1.EndpointSlice { return &in.EndpointSlices }, func(s *Snapshot) []*discoveryv1.EndpointSlice { return s.in.EndpointSlices })
	register("Pod", func(in *Input) *[]*corev1.Pod { return &in.Pods }, func(s *Snapshot) []*corev1.Pod { return s.in.Pods })
	register("Secret", func(in *Input) *[]*corev1.Secret { return &in.Secrets }, func(s *Snapshot) []*corev1.Secret { return s.in.Secrets })
	register("VirtualService", func(in *Input) *[]*networkingv1.VirtualService { return &in.VirtualServices }, func(s *Snapshot) []*networkingv1.VirtualService { return s.VirtualServices })
	register("DestinationRule", func(in *Input) *[]*networkingv1.DestinationRule { return &in.DestinationRules }, func(s *Snapshot) []*networkingv1.DestinationRule { return s.DestinationRules })
	register("Gateway."+networkingGroup, func(in *Input) *[]*networkingv1.Gateway { return &in.Gateways }, func(s *Snapshot) []*networkingv1.Gateway { return s.Gateways })
	register("ServiceEntry", func(in *Input) *[]*networkingv1.ServiceEntry { return &in.ServiceEntries }, func(s *Snapshot) []*networkingv1.ServiceEntry { return s.ServiceEntries })
	register("Sidecar", func(in *Input) *[]*networkingv1.Sidecar { return &in.Sidecars }, func(s *Snapshot) []*networkingv1.Sidecar { return s.Sidecars })
	register("WorkloadEntry", func(in *Input) *[]*networkingv1.WorkloadEntry { return &in.WorkloadEntries }, func(s *Snapshot) []*networkingv1.WorkloadEntry { return s.WorkloadEntries })
	register("PeerAuthentication", func(in *Input) *[]*securityv1.PeerAuthentication { return &in.PeerAuthentications }, func(s *Snapshot) []*securityv1.PeerAuthentication { return s.PeerAuthentications })
	register("AuthorizationPolicy", func(in *Input) *[]*securityv1.AuthorizationPolicy { return &in.AuthorizationPolicies }, func(s *Snapshot) []*securityv1.AuthorizationPolicy { return s.AuthorizationPolicies })
	register("RequestAuthentication", func(in *Input) *[]*securityv1.RequestAuthentication { return &in.RequestAuthentications }, func(s *Snapshot) []*securityv1.RequestAuthentication { return s.RequestAuthentications })
	register("Telemetry", func(in *Input) *[]*telemetryv1.Telemetry { return &in.Telemetries }, func(s *Snapshot) []*telemetryv1.Telemetry { return s.Telemetries })
	register("MetaRoute", func(in *Input) *[]*meshnet.MetaRoute { return &in.MetaRoutes }, func(s *Snapshot) []*meshnet.MetaRoute { return s.MetaRoutes })
	register("GatewayClass", func(in *Input) *[]*gwv1.GatewayClass { return &in.GatewayClasses }, func(s *Snapshot) []*gwv1.GatewayClass { return s.GatewayClasses })
	register("Gateway."+gatewayAPIGroup, func(in *Input) *[]*gwv1.Gateway { return &in.KubeGateways }, func(s *Snapshot) []*gwv1.Gateway { return s.KubeGateways })
	register("HTTPRoute", func(in *Input) *[]*gwv1.HTTPRoute { return &in.HTTPRoutes }, func(s *Snapshot) []*gwv1.HTTPRoute { return s.HTTPRoutes })
	register("GRPCRoute", func(in *Input) *[]*gwv1.GRPCRoute { return &in.GRPCRoutes }, func(s *Snapshot) []*gwv1.GRPCRoute { return s.GRPCRoutes })
	register("ReferenceGrant", func(in *Input) *[]*gwv1.ReferenceGrant { return &in.ReferenceGrants }, func(s *Snapshot) []*gwv1.ReferenceGrant { return s.ReferenceGrants })
	for _, k := range Kinds {
		if k.load == nil || k.objects == nil || k.put == nil || k.Informer == nil && k.Informers == nil {
			panic(fmt.Sprintf("model: kind %s has no Input/Snapshot field or informer", k.GVK.Kind))
		}
	}
}

// KindOf returns the row of a kind, or nil.
func KindOf(gvk schema.GroupKind) *Kind {
	for _, k := range Kinds {
		if k.GVK.GroupKind() == gvk {
			return k
		}
	}
	return nil
}

// crdGroupVersions are the group/versions the CRD kinds are watched at.
func crdGroupVersions() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range Kinds {
		if gv := k.GVK.GroupVersion().String(); k.CRD && !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

func classifyEndpointSlice(_ *Watcher, o any) Change {
	es, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return Change{Full: true}
	}
	return Change{EndpointHosts: map[string]bool{KubeHostname(es.Labels[discoveryv1.LabelServiceName], es.Namespace): true}}
}

// classifyPod records the pod's labels, resolved to the services selecting
// it when the burst is flushed: a pod's labels decide subset membership and
// its IP the endpoint, so a pod change is an endpoint change of those.
func classifyPod(w *Watcher, o any) Change {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return Change{Full: true}
	}
	w.podSets = append(w.podSets, pod.Labels)
	w.podNS = append(w.podNS, pod.Namespace)
	return Change{}
}

// metaRouteInformer is the MetaRoute informer of f, storing typed
// MetaRoutes (an object that does not convert is dropped, with a log: the
// API server's schema and the webhook keep such objects out).
func metaRouteInformer(f dynamicinformer.DynamicSharedInformerFactory) cache.SharedIndexInformer {
	inf := f.ForResource(meshnet.Resource).Informer()
	// Set before the factory starts (the watcher asks for the informer
	// first); later calls fail harmlessly, the transform already set.
	_ = inf.SetTransform(toMetaRoute)
	return inf
}

func toMetaRoute(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	mr := &meshnet.MetaRoute{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, mr); err != nil {
		slog.Warn("MetaRoute not read: it does not match the MetaRoute schema", "metaRoute", u.GetNamespace()+"/"+u.GetName(), "err", err)
		mr = &meshnet.MetaRoute{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), ResourceVersion: u.GetResourceVersion(), Generation: u.GetGeneration()}}
	}
	mr.SetGroupVersionKind(meshnet.SchemeGroupVersion.WithKind(meshnet.Kind))
	return mr, nil
}

// updateMetaRouteStatus writes a MetaRoute's status through the dynamic
// client (mesh's own kinds have no typed clientset).
func updateMetaRouteStatus(ctx context.Context, c StatusClients, x *meshnet.MetaRoute) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(x)
	if err != nil {
		return fmt.Errorf("MetaRoute %s/%s to unstructured: %w", x.Namespace, x.Name, err)
	}
	_, err = c.Dynamic.Resource(meshnet.Resource).Namespace(x.Namespace).UpdateStatus(ctx, &unstructured.Unstructured{Object: u}, statusUpdate)
	return err
}
