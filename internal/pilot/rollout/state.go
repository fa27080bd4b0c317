package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Saved is one resource's rollout as kept in the cluster, so a pilot that
// restarts resumes it (docs/rollout.md) instead of serving the resource
// as applied.
type Saved struct {
	ID         string    `json:"resource"`
	Generation int64     `json:"generation"` // of the candidate (the applied version)
	Phase      Phase     `json:"phase"`
	Stage      int       `json:"stage"` // index into the stages
	Since      time.Time `json:"since"`
	Revision   uint64    `json:"revision"`
	Reason     string    `json:"reason,omitempty"`
	// Released is the released version as JSON (null: none).
	Released json.RawMessage `json:"released"`
}

// ConfigMapStore keeps the rollouts in flight in a ConfigMap of pilot's
// namespace, one key per resource. Only the replica Write says (the
// leader) writes the state; the others read it as it changes and hand it
// to Follow. A replica that does not lead hands a rejection to the
// leader under a key of its own ("reject.KEY.GENERATION"), which the
// leader hands to Rejected and, once that is done with it, deletes.
type ConfigMapStore struct {
	Kube      kubernetes.Interface
	Namespace string
	Name      string // default mesh-pilot-rollouts
	Write     func() bool
	// Follow, when set, is given the state whenever it changes while this
	// replica does not write (Manager.Follow).
	Follow func(map[string]Saved)
	// Rejected, when set, is given, while this replica writes, each
	// rejection another replica handed on; true when done with it
	// (Manager.Forwarded).
	Rejected func(Rejection) bool
	Log      *slog.Logger

	mu      sync.Mutex
	pending map[string]Saved
	wake    chan struct{}
	current *corev1.ConfigMap // as last read
}

// rejectPrefix begins the keys of handed-on rejections.
const rejectPrefix = "reject."

func (s *ConfigMapStore) name() string {
	if s.Name == "" {
		return "mesh-pilot-rollouts"
	}
	return s.Name
}

func (s *ConfigMapStore) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// key turns a resource id into a ConfigMap key (namespaces and names
// never hold "_").
func key(id string) string { return strings.ReplaceAll(id, "/", "_") }

// Load reads what was kept.
func (s *ConfigMapStore) Load(ctx context.Context) (map[string]Saved, error) {
	cm, err := s.Kube.CoreV1().ConfigMaps(s.Namespace).Get(ctx, s.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read configmap %s/%s: %w", s.Namespace, s.name(), err)
	}
	return s.decode(cm)
}

func (s *ConfigMapStore) decode(cm *corev1.ConfigMap) (map[string]Saved, error) {
	out := map[string]Saved{}
	for k, v := range cm.Data {
		if strings.HasPrefix(k, rejectPrefix) {
			continue
		}
		var sv Saved
		if err := json.Unmarshal([]byte(v), &sv); err != nil {
			return nil, fmt.Errorf("configmap %s/%s key %s: %w", s.Namespace, s.name(), k, err)
		}
		out[sv.ID] = sv
	}
	return out, nil
}

// Offer queues the state to keep (latest wins); it never blocks.
func (s *ConfigMapStore) Offer(all map[string]Saved) {
	s.mu.Lock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	s.pending = all
	s.mu.Unlock()
	s.poke()
}

func (s *ConfigMapStore) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Forward hands a rejection to the leader (Manager.Forward); it never
// blocks.
func (s *ConfigMapStore) Forward(rej Rejection) {
	go func() {
		b, err := json.Marshal(rej)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k := fmt.Sprintf("%s%s.%d", rejectPrefix, key(rej.ID), rej.Generation)
			err = s.patch(ctx, map[string]any{k: string(b)})
		}
		if err != nil {
			s.log().Warn("hand a rollout rejection to the leader", "resource", rej.ID, "proxy", rej.Proxy, "err", err)
		}
	}()
}

// Run writes what is offered, and reads what the others write, until
// ctx ends.
func (s *ConfigMapStore) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	s.mu.Unlock()
	if s.Follow != nil || s.Rejected != nil {
		f := informers.NewSharedInformerFactoryWithOptions(s.Kube, 0, informers.WithNamespace(s.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name()).String()
			}))
		inf := f.Core().V1().ConfigMaps().Informer()
		seen := func(obj any) {
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				s.mu.Lock()
				s.current = cm
				s.mu.Unlock()
				s.read(ctx, cm)
			}
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    seen,
			UpdateFunc: func(_, obj any) { seen(obj) },
		}); err != nil {
			return fmt.Errorf("watch configmap %s/%s: %w", s.Namespace, s.name(), err)
		}
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	// A rejection the leader could not take yet (its snapshot lags) is
	// offered again.
	retry := time.NewTicker(2 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
			s.mu.Lock()
			cm := s.current
			s.mu.Unlock()
			if cm != nil && s.writes() {
				s.rejections(ctx, cm)
			}
			continue
		case <-s.wake:
		}
		s.mu.Lock()
		all := s.pending
		s.mu.Unlock()
		if all == nil || !s.writes() {
			continue
		}
		if err := s.write(ctx, all); err != nil && ctx.Err() == nil {
			s.log().Warn("keep rollout state", "configmap", s.Namespace+"/"+s.name(), "err", err)
		}
	}
}

func (s *ConfigMapStore) writes() bool { return s.Write == nil || s.Write() }

// read hands what another replica wrote on: the leader's state to a
// follower, the followers' rejections to the leader.
func (s *ConfigMapStore) read(ctx context.Context, cm *corev1.ConfigMap) {
	if s.writes() {
		s.rejections(ctx, cm)
		return
	}
	if s.Follow == nil {
		return
	}
	all, err := s.decode(cm)
	if err != nil {
		s.log().Warn("follow the rollout leader", "err", err)
		return
	}
	s.Follow(all)
}

func (s *ConfigMapStore) rejections(ctx context.Context, cm *corev1.ConfigMap) {
	if s.Rejected == nil {
		return
	}
	done := map[string]any{}
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, rejectPrefix) {
			continue
		}
		var rej Rejection
		if err := json.Unmarshal([]byte(v), &rej); err != nil || s.Rejected(rej) {
			done[k] = nil
		}
	}
	if len(done) == 0 {
		return
	}
	if err := s.patch(ctx, done); err != nil && ctx.Err() == nil {
		s.log().Warn("clear handed-on rollout rejections", "err", err)
	}
}

// write keeps all: a merge patch that sets every resource's key and
// removes the keys of resources gone, leaving the rejections alone.
func (s *ConfigMapStore) write(ctx context.Context, all map[string]Saved) error {
	data := map[string]any{}
	for id, sv := range all {
		b, err := json.Marshal(sv)
		if err != nil {
			return err
		}
		data[key(id)] = string(b)
	}
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	if cur == nil {
		c, err := s.Kube.CoreV1().ConfigMaps(s.Namespace).Get(ctx, s.name(), metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		cur = c
	}
	if cur != nil {
		for k := range cur.Data {
			if _, ok := data[k]; !ok && !strings.HasPrefix(k, rejectPrefix) {
				data[k] = nil
			}
		}
	}
	return s.patch(ctx, data)
}

// patch merges data into the ConfigMap (a nil value removes the key),
// creating it when there is none.
func (s *ConfigMapStore) patch(ctx context.Context, data map[string]any) error {
	cms := s.Kube.CoreV1().ConfigMaps(s.Namespace)
	body, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return err
	}
	_, err = cms.Patch(ctx, s.name(), types.MergePatchType, body, metav1.PatchOptions{FieldManager: "mesh-pilot"})
	if !apierrors.IsNotFound(err) {
		return err
	}
	kept := map[string]string{}
	for k, v := range data {
		if v, ok := v.(string); ok {
			kept[k] = v
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.name(), Namespace: s.Namespace,
		Labels: map[string]string{"app": "mesh-pilot"}}, Data: kept}
	_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "mesh-pilot"})
	if apierrors.IsAlreadyExists(err) {
		_, err = cms.Patch(ctx, s.name(), types.MergePatchType, body, metav1.PatchOptions{FieldManager: "mesh-pilot"})
	}
	return err
}

// saved is r's state to keep; false when there is nothing to keep (a
// change held by its annotations, which every replica holds alike). A
// released generation is kept too, without its versions, so replicas
// that follow the leader learn that it was promoted.
func (r *resource) saved() (Saved, bool) {
	if r.phase == Held || r.applied == nil {
		return Saved{}, false
	}
	sv := Saved{ID: r.id, Generation: r.applied.GetGeneration(), Phase: r.phase, Stage: r.stage, Since: r.since, Revision: r.revision, Reason: r.reason}
	if r.phase == Released {
		sv.Released = json.RawMessage("null")
		return sv, true
	}
	if r.released != nil {
		b, err := json.Marshal(r.released)
		if err != nil {
			return Saved{}, false
		}
		sv.Released = b
	} else {
		sv.Released = json.RawMessage("null")
	}
	return sv, true
}

// decodeLike reads a kept version into a new object of o's type.
func decodeLike(raw json.RawMessage, o metav1.Object) (metav1.Object, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	t := reflect.TypeOf(o)
	if t.Kind() != reflect.Pointer {
		return nil, false
	}
	v := reflect.New(t.Elem()).Interface()
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, false
	}
	out, ok := v.(metav1.Object)
	return out, ok
}
