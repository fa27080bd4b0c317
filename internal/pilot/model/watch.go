package model

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// Change describes what differs between two consecutive snapshots, so the
// pusher can skip work: when Full is false only the endpoints of
// EndpointHosts changed.
type Change struct {
	Full          bool
	EndpointHosts map[string]bool
}

// Merge folds o into c.
func (c *Change) Merge(o Change) {
	c.Full = c.Full || o.Full
	if c.EndpointHosts == nil {
		c.EndpointHosts = map[string]bool{}
	}
	for h := range o.EndpointHosts {
		c.EndpointHosts[h] = true
	}
}

// Watcher builds snapshots from Kubernetes informers, debouncing bursts of
// events into one snapshot.
type Watcher struct {
	Kube          kubernetes.Interface
	Istio         istioclient.Interface // nil, or when the Istio CRDs are absent: no Istio config
	GatewayAPI    gwclient.Interface    // nil, or when the Gateway API CRDs are absent: no Gateway API config
	Dynamic       dynamic.Interface     // nil, or when mesh's own CRDs are absent: no MetaRoutes
	RootNamespace string
	// SecretNamespaces are where Secrets are always read for gateway
	// credentials (pilot's own and the install's gateways'), or "*" for
	// every namespace (pilot then needs to read Secrets cluster-wide);
	// none: no Secrets are read. Each namespace is watched on its own, so
	// pilot needs only a Role in each.
	SecretNamespaces []string
	// FollowGatewaySecrets, unless SecretNamespaces has "*", also reads
	// Secrets in each namespace gateways need them from
	// (Snapshot.GatewaySecretNamespaces) while they do: an informer is
	// started when a namespace joins and stopped when it leaves.
	FollowGatewaySecrets bool
	Mesh                 *meshconfig.MeshConfig // carried into every snapshot
	JWKSFetch            JWKSFetchMode          // carried into every snapshot
	Debounce             time.Duration          // quiet time before a snapshot is built (default 100ms)
	MaxDelay             time.Duration          // longest an event waits under constant churn (default 1s)
	// OnSnapshot receives each new snapshot; it is called from one goroutine.
	OnSnapshot func(*Snapshot, Change)

	mu      sync.Mutex
	pending Change
	podSets []labels.Set // labels of pods that changed, resolved to hosts at flush
	podNS   []string
	kick    chan struct{}
	version uint64
	listers Informers
	served  map[string]bool // CRD group/versions the API server serves
	// followed are the Secret informers of the namespaces followed
	// (FollowGatewaySecrets), by namespace.
	followed map[string]*followedSecrets
}

// followedSecrets is the Secret informer of one followed namespace.
type followedSecrets struct {
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
}

// kinds are the rows of the kind table watched: the core kinds, and the
// CRD kinds whose group/version the API server serves (a cluster whose
// base chart predates a kind still gets the others), Istio's and the
// Gateway API's each through their own informers.
func (w *Watcher) kinds() []*Kind {
	var out []*Kind
	for _, k := range Kinds {
		if (!k.CRD || w.served[k.GVK.GroupVersion().String()]) && w.listers.served(k) {
			out = append(out, k)
		}
	}
	return out
}

// Run starts the informers, waits for them to sync, publishes a first snapshot
// and then one per debounced burst of changes until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Debounce == 0 {
		w.Debounce = 100 * time.Millisecond
	}
	if w.MaxDelay == 0 {
		w.MaxDelay = time.Second
	}
	w.mu.Lock()
	w.kick = make(chan struct{}, 1)
	w.mu.Unlock()
	f := informers.NewSharedInformerFactory(w.Kube, 0)
	w.listers.Kube = f
	if w.Istio != nil || w.GatewayAPI != nil || w.Dynamic != nil {
		var missing []string
		w.served, missing = servedGroupVersions(w.Kube)
		istio, gwapi, own := false, false, false
		for gv := range w.served {
			switch {
			case strings.HasPrefix(gv, gatewayAPIGroup+"/"):
				gwapi = true
			case strings.HasPrefix(gv, meshnet.GroupName+"/"):
				own = true
			default:
				istio = true
			}
		}
		if own && w.Dynamic != nil {
			w.listers.Mesh = dynamicinformer.NewDynamicSharedInformerFactory(w.Dynamic, 0)
		}
		if istio && w.Istio != nil {
			w.listers.Istio = istioinformers.NewSharedInformerFactory(w.Istio, 0)
		}
		if gwapi && w.GatewayAPI != nil {
			w.listers.GatewayAPI = gwinformers.NewSharedInformerFactory(w.GatewayAPI, 0)
		}
		if len(missing) > 0 {
			slog.Warn("CRDs not served; their kinds are not read (install the base chart's CRDs)", "groupVersions", missing)
		}
	}
	w.listers.Secrets = nil
	for _, ns := range secretNamespaces(w.SecretNamespaces) {
		w.listers.Secrets = append(w.listers.Secrets, secretInformers(w.Kube, ns))
	}
	for _, k := range w.kinds() {
		classify := func(o any) Change { return Change{Full: true} }
		if k.Classify != nil {
			classify = func(o any) Change { return k.Classify(w, o) }
		}
		for _, inf := range k.informers(w.listers) {
			if k.Status != nil {
				w.handleSpec(inf, classify)
			} else {
				w.handle(inf, classify)
			}
		}
	}
	if inf := w.listers.Istio; inf != nil {
		inf.Start(ctx.Done())
		for typ, ok := range inf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("sync informer for %v: %w", typ, ctx.Err())
			}
		}
	}
	if inf := w.listers.Mesh; inf != nil {
		inf.Start(ctx.Done())
		for typ, ok := range inf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("sync informer for %v: %w", typ, ctx.Err())
			}
		}
	}
	if inf := w.listers.GatewayAPI; inf != nil {
		inf.Start(ctx.Done())
		for typ, ok := range inf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("sync informer for %v: %w", typ, ctx.Err())
			}
		}
	}
	for _, f := range append([]informers.SharedInformerFactory{f}, w.listers.Secrets...) {
		f.Start(ctx.Done())
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("sync informer for %v: %w", typ, ctx.Err())
			}
		}
	}
	w.mu.Lock()
	w.pending = Change{}
	w.podSets, w.podNS = nil, nil
	w.mu.Unlock()
	defer w.unfollowAll()
	w.publish(ctx, Change{Full: true})

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
		first := time.Now()
		quiet := time.NewTimer(w.Debounce)
	wait:
		for {
			select {
			case <-ctx.Done():
				quiet.Stop()
				return nil
			case <-w.kick:
				if time.Since(first) >= w.MaxDelay {
					quiet.Stop()
					break wait
				}
				quiet.Reset(w.Debounce)
			case <-quiet.C:
				break wait
			}
		}
		w.mu.Lock()
		ch := w.pending
		podSets, podNS := w.podSets, w.podNS
		w.pending, w.podSets, w.podNS = Change{}, nil, nil
		w.mu.Unlock()
		snap := w.publishSnapshot()
		w.follow(ctx, snap)
		if !ch.Full {
			// Pods recorded by classifyPod become endpoint changes of the
			// services selecting them.
			for i, set := range podSets {
				for _, svc := range snap.ServicesFor(podNS[i], set) {
					if ch.EndpointHosts == nil {
						ch.EndpointHosts = map[string]bool{}
					}
					ch.EndpointHosts[svc.Hostname] = true
				}
			}
		}
		w.OnSnapshot(snap, ch)
	}
}

func (w *Watcher) handle(inf cache.SharedIndexInformer, classify func(any) Change) {
	record := func(o any) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		w.mu.Lock()
		w.pending.Merge(classify(o))
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, n any) { record(n) },
		DeleteFunc: record,
	})
}

// handleSpec is handle for Istio config, ignoring updates that change only
// the status (pilot writes status on these kinds; a write must not cause a
// push): the generation, labels and annotations are the same.
func (w *Watcher) handleSpec(inf cache.SharedIndexInformer, classify func(any) Change) {
	w.handle(&specOnly{SharedIndexInformer: inf}, classify)
}

// specOnly filters the update events an informer delivers to handlers
// added through it.
type specOnly struct{ cache.SharedIndexInformer }

func (s *specOnly) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return s.SharedIndexInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { h.OnAdd(o, false) },
		UpdateFunc: func(o, n any) {
			if statusOnly(o, n) {
				return
			}
			h.OnUpdate(o, n)
		},
		DeleteFunc: h.OnDelete,
	})
}

func statusOnly(o, n any) bool {
	om, ok1 := o.(metav1.Object)
	nm, ok2 := n.(metav1.Object)
	return ok1 && ok2 && om.GetGeneration() != 0 && om.GetGeneration() == nm.GetGeneration() &&
		maps.Equal(om.GetLabels(), nm.GetLabels()) && maps.Equal(om.GetAnnotations(), nm.GetAnnotations()) &&
		om.GetDeletionTimestamp().Equal(nm.GetDeletionTimestamp())
}

func (w *Watcher) publish(ctx context.Context, ch Change) {
	snap := w.publishSnapshot()
	w.follow(ctx, snap)
	w.OnSnapshot(snap, ch)
}

// secretInformers is the factory of the Secret informer of namespace ns
// (metav1.NamespaceAll: every namespace). Types that are never
// credentials (credential.Served) are not listed at all: service account
// tokens and Helm's releases are most of a cluster's Secrets.
func secretInformers(kube kubernetes.Interface, ns string) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "type!=" + string(corev1.SecretTypeServiceAccountToken) + ",type!=helm.sh/release.v1"
		}))
}

// follow starts a Secret informer for each namespace snap's gateways need
// Secrets from that is not read already, and stops those of namespaces no
// longer needed; either makes a full change, as the credentials served
// change. A new informer's namespace is pending (its Secrets not known)
// until it has listed them; it may not be allowed to at first, until the
// leader's RoleBinding there exists (secretaccess), and retries.
func (w *Watcher) follow(ctx context.Context, snap *Snapshot) {
	if !w.FollowGatewaySecrets || slices.Contains(w.SecretNamespaces, "*") {
		return
	}
	want := snap.GatewaySecretNamespaces()
	changed := false
	w.mu.Lock()
	if w.followed == nil {
		w.followed = map[string]*followedSecrets{}
	}
	for ns, f := range w.followed {
		if want[ns] == nil {
			f.stop()
			delete(w.followed, ns)
			changed = true
			slog.Info("gateway Secrets: no longer read", "namespace", ns)
		}
	}
	for ns := range want {
		if w.followed[ns] != nil || slices.Contains(w.SecretNamespaces, ns) {
			continue
		}
		fctx, stop := context.WithCancel(ctx)
		factory := secretInformers(w.Kube, ns)
		inf := factory.Core().V1().Secrets().Informer()
		w.followed[ns] = &followedSecrets{informer: inf, stop: stop}
		w.handle(inf, func(any) Change { return Change{Full: true} })
		factory.Start(fctx.Done())
		go func() {
			// An empty namespace lists no Secret, so no event says its
			// informer synced: this does.
			if cache.WaitForCacheSync(fctx.Done(), inf.HasSynced) {
				w.kickFull()
			}
		}()
		changed = true
		slog.Info("gateway Secrets: reading", "namespace", ns)
	}
	w.mu.Unlock()
	if changed {
		w.kickFull()
	}
}

// unfollowAll stops the informers of the namespaces followed.
func (w *Watcher) unfollowAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ns, f := range w.followed {
		f.stop()
		delete(w.followed, ns)
	}
}

// kickFull has a snapshot built with a full change.
func (w *Watcher) kickFull() {
	w.mu.Lock()
	w.pending.Merge(Change{Full: true})
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Watcher) publishSnapshot() *Snapshot {
	w.version++
	return Build(w.version, w.input())
}

// SetMesh replaces the mesh config (and the root namespace it names) the
// next snapshots carry and has one built: a full push, since a mesh
// config field may change any proxy's config.
func (w *Watcher) SetMesh(mc *meshconfig.MeshConfig) {
	w.mu.Lock()
	w.Mesh, w.RootNamespace = mc, mc.GetRootNamespace()
	w.pending.Merge(Change{Full: true})
	kick := w.kick
	w.mu.Unlock()
	if kick == nil {
		return // not running yet: its first snapshot carries mc
	}
	select {
	case kick <- struct{}{}:
	default:
	}
}

func (w *Watcher) input() Input {
	w.mu.Lock()
	in := Input{RootNamespace: w.RootNamespace, SecretNamespaces: slices.Clone(w.SecretNamespaces), Mesh: w.Mesh, JWKSFetch: w.JWKSFetch}
	var followed []cache.SharedIndexInformer
	for _, ns := range slices.Sorted(maps.Keys(w.followed)) {
		f := w.followed[ns]
		if !f.informer.HasSynced() {
			in.SecretNamespacesPending = append(in.SecretNamespacesPending, ns)
			continue
		}
		in.SecretNamespaces = append(in.SecretNamespaces, ns)
		followed = append(followed, f.informer)
	}
	w.mu.Unlock()
	for _, k := range w.kinds() {
		k.load(w.listers, &in)
	}
	for _, inf := range followed {
		for _, o := range inf.GetStore().List() {
			if sec, ok := o.(*corev1.Secret); ok {
				in.Secrets = append(in.Secrets, sec)
			}
		}
	}
	return in
}

// servedGroupVersions reports which group/versions of the Istio kinds pilot
// watches the API server serves; without a CRD its informer would never sync.
func servedGroupVersions(kube kubernetes.Interface) (served map[string]bool, missing []string) {
	served = map[string]bool{}
	for _, gv := range crdGroupVersions() {
		if _, err := kube.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
			missing = append(missing, gv)
			continue
		}
		served[gv] = true
	}
	return served, missing
}

// secretNamespaces returns the namespaces to watch Secrets in, each once:
// metav1.NamespaceAll alone when "*" is among them.
func secretNamespaces(nss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, ns := range nss {
		if ns == "*" {
			return []string{metav1.NamespaceAll}
		}
		if ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out
}
