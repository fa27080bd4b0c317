// Package meshwatch keeps pilot's mesh config in step with its ConfigMap:
// each change is parsed with the checks pilot runs at start; a valid one
// replaces the config pilot serves, an invalid one is refused (pilot keeps
// the last good config) and said in the log, a Warning Event on the
// ConfigMap and a metric, as istiod keeps its last good mesh config.
package meshwatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshconfig "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"mesh.dev/mesh/internal/enforced"
	"mesh.dev/mesh/internal/pilot/telemetry"
	"mesh.dev/mesh/internal/pilot/xds"
)

// Key is the ConfigMap key holding the mesh config YAML, as Istio's.
const Key = "mesh"

// Parse reads mesh config YAML with every check pilot makes before it
// serves a config (the fields, the providers, outboundTrafficPolicy,
// protocolDetectionTimeout), naming source in its errors, and fills
// rootNamespace with defaultRoot when the config sets none.
func Parse(data []byte, source, defaultRoot string) (*meshconfig.MeshConfig, error) {
	mc, err := telemetry.ParseMesh(data, source)
	if err != nil {
		return nil, err
	}
	if err := xds.CheckOutboundTrafficPolicy(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", source, err)
	}
	if err := xds.CheckProtocolDetectionTimeout(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", source, err)
	}
	if mc.RootNamespace == "" {
		mc.RootNamespace = defaultRoot
	}
	return mc, nil
}

// Config says which ConfigMap a Watcher watches and whom it tells.
type Config struct {
	Kube      kubernetes.Interface
	Namespace string // the ConfigMap's (pilot's own)
	Name      string // the ConfigMap's: mesh, or mesh-<revision>
	// DefaultRoot is the rootNamespace of a config that sets none.
	DefaultRoot string
	// OnChange receives each config that replaces Current, from one
	// goroutine; pilot rebuilds and pushes to every proxy on it.
	OnChange func(*meshconfig.MeshConfig)
	Log      *slog.Logger
}

// Watcher watches one ConfigMap's mesh key and keeps Current the last
// valid config it held.
type Watcher struct {
	Config
	current  atomic.Pointer[meshconfig.MeshConfig]
	mu       sync.Mutex
	lastData *string // the content last judged, applied or refused
	metrics  *metrics
}

type metrics struct {
	rejected prometheus.Gauge
	reloads  *prometheus.CounterVec
}

// New is a watcher serving initial (read at start, from the same
// ConfigMap's file or from the API) until the ConfigMap changes. data is
// the content initial was parsed from (nil: none, pilot's defaults), so
// the ConfigMap's first sight is no change when it says the same. reg,
// when not nil, gets the watcher's metrics.
func New(c Config, initial *meshconfig.MeshConfig, data []byte, reg prometheus.Registerer) *Watcher {
	nw := &Watcher{Config: c}
	if nw.Log == nil {
		nw.Log = slog.Default()
	}
	nw.current.Store(initial)
	if data != nil {
		s := string(data)
		nw.lastData = &s
	}
	nw.metrics = &metrics{
		rejected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesh_pilot_mesh_config_rejected",
			Help: "1 while the mesh ConfigMap holds a config pilot refused (it serves the last good one), else 0."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesh_pilot_mesh_config_reloads_total",
			Help: "Changes of the mesh ConfigMap pilot judged, by result (applied or rejected)."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(nw.metrics.rejected, nw.metrics.reloads)
	}
	return nw
}

// Current is the mesh config pilot serves now.
func (w *Watcher) Current() *meshconfig.MeshConfig { return w.current.Load() }

// Read gets the ConfigMap's mesh config from the API server once, for
// pilot's start: found is false when there is no such ConfigMap (pilot
// then runs on the defaults until one is created).
func Read(ctx context.Context, kube kubernetes.Interface, namespace, name, defaultRoot string) (mc *meshconfig.MeshConfig, data []byte, found bool, err error) {
	cm, err := kube.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &meshconfig.MeshConfig{RootNamespace: defaultRoot}, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("read mesh config ConfigMap %s/%s: %w", namespace, name, err)
	}
	s, ok := cm.Data[Key]
	if !ok {
		return nil, nil, true, fmt.Errorf("mesh config ConfigMap %s/%s has no key %q (the mesh config YAML goes there)", namespace, name, Key)
	}
	mc, err = Parse([]byte(s), "ConfigMap "+namespace+"/"+name, defaultRoot)
	return mc, []byte(s), true, err
}

// Run watches the ConfigMap until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(w.Kube, 0, informers.WithNamespace(w.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.Name).String()
		}))
	inf := f.Core().V1().ConfigMaps().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.judge(ctx, o.(*corev1.ConfigMap)) },
		UpdateFunc: func(_, n any) { w.judge(ctx, n.(*corev1.ConfigMap)) },
		DeleteFunc: func(any) {
			// The last good config stays: a deleted ConfigMap is more
			// likely a mistake than a wish for Istio's defaults.
			w.Log.Warn("mesh config ConfigMap deleted; pilot keeps serving the last mesh config it read",
				"configMap", w.Namespace+"/"+w.Name)
		},
	})
	if err != nil {
		return fmt.Errorf("watch mesh config ConfigMap: %w", err)
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}

// judge applies or refuses the ConfigMap's content when it differs from
// what was last judged (a resync or a label change is no change).
func (w *Watcher) judge(ctx context.Context, cm *corev1.ConfigMap) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := cm.Data[Key]
	if ok && w.lastData != nil && *w.lastData == s {
		return
	}
	source := "ConfigMap " + cm.Namespace + "/" + cm.Name
	var mc *meshconfig.MeshConfig
	err := fmt.Errorf("mesh config %s has no key %q (the mesh config YAML goes there)", source, Key)
	if ok {
		w.lastData = &s
		mc, err = Parse([]byte(s), source, w.DefaultRoot)
	}
	if err != nil {
		w.metrics.rejected.Set(1)
		w.metrics.reloads.WithLabelValues("rejected").Inc()
		w.Log.Error("mesh config change refused; pilot keeps serving the last good mesh config (a pilot starting now would stop on this one): fix the ConfigMap",
			"configMap", cm.Namespace+"/"+cm.Name, "resourceVersion", cm.ResourceVersion, "err", err)
		w.event(ctx, cm, corev1.EventTypeWarning, "MeshConfigRejected", fmt.Sprintf(
			"pilot refused this mesh config and keeps serving the last good one; a pilot starting now would stop on it: %v", err))
		return
	}
	w.metrics.rejected.Set(0)
	old := w.current.Load()
	if proto.Equal(old, mc) {
		// Same meaning, other text (a comment, the order of keys), or
		// the config served before a refused change put back.
		w.Log.Info("mesh config ConfigMap changed; pilot's mesh config is unchanged", "configMap", cm.Namespace+"/"+cm.Name,
			"resourceVersion", cm.ResourceVersion)
		return
	}
	w.metrics.reloads.WithLabelValues("applied").Inc()
	changed := ChangedFields(old, mc)
	w.current.Store(mc)
	w.Log.Info("mesh config changed; pushing to every proxy", "configMap", cm.Namespace+"/"+cm.Name,
		"resourceVersion", cm.ResourceVersion, "fields", changed)
	for _, f := range enforced.MeshConfig(mc) {
		w.Log.Warn("mesh config field not carried out", "field", f.Path, "why", f.Note)
	}
	w.event(ctx, cm, corev1.EventTypeNormal, "MeshConfigApplied", fmt.Sprintf(
		"pilot serves this mesh config to every proxy (changed: %s)", strings.Join(changed, ", ")))
	if w.OnChange != nil {
		w.OnChange(mc)
	}
}

// ChangedFields names the top-level fields of the mesh config that
// differ between a and b (meshConfig.outboundTrafficPolicy, ...).
func ChangedFields(a, b *meshconfig.MeshConfig) []string {
	var out []string
	fds := (&meshconfig.MeshConfig{}).ProtoReflect().Descriptor().Fields()
	ra, rb := a.ProtoReflect(), b.ProtoReflect()
	for i := range fds.Len() {
		fd := fds.Get(i)
		if !fieldEqual(fd, ra, rb) {
			out = append(out, "meshConfig."+fd.JSONName())
		}
	}
	slices.Sort(out)
	return out
}

func fieldEqual(fd protoreflect.FieldDescriptor, a, b protoreflect.Message) bool {
	if a.Has(fd) != b.Has(fd) {
		return false
	}
	if !a.Has(fd) {
		return true
	}
	va, vb := a.Get(fd), b.Get(fd)
	switch {
	case fd.IsList():
		la, lb := va.List(), vb.List()
		if la.Len() != lb.Len() {
			return false
		}
		for i := range la.Len() {
			if !valueEqual(fd, la.Get(i), lb.Get(i)) {
				return false
			}
		}
		return true
	case fd.IsMap():
		ma, mb := va.Map(), vb.Map()
		if ma.Len() != mb.Len() {
			return false
		}
		eq := true
		ma.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			if !mb.Has(k) || !valueEqual(fd.MapValue(), v, mb.Get(k)) {
				eq = false
			}
			return eq
		})
		return eq
	}
	return valueEqual(fd, va, vb)
}

func valueEqual(fd protoreflect.FieldDescriptor, a, b protoreflect.Value) bool {
	if fd.Message() != nil {
		return proto.Equal(a.Message().Interface(), b.Message().Interface())
	}
	return a.Equal(b)
}

// event records what pilot made of a version of the ConfigMap. Every
// replica judges the same content alike, so the Event's name is the
// version's and outcome's: the first replica creates it, the others find
// it there.
func (w *Watcher) event(ctx context.Context, cm *corev1.ConfigMap, typ, reason, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	sum := sha256.Sum256([]byte(string(cm.UID) + "/" + cm.ResourceVersion + "/" + reason))
	host, _ := os.Hostname()
	now := metav1.NewTime(time.Now())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := w.Kube.CoreV1().Events(cm.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.mesh-config-%x", cm.Name, sum[:6]), Namespace: cm.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: cm.Namespace, Name: cm.Name,
			UID: cm.UID, ResourceVersion: cm.ResourceVersion},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: "mesh-pilot", Host: host},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "mesh.io/pilot", ReportingInstance: host,
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) && !errors.Is(err, context.Canceled) {
		w.Log.Warn("record mesh config event", "configMap", cm.Namespace+"/"+cm.Name, "reason", reason, "err", err)
	}
}
