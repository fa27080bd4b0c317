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
	"k8s.io/client-go/kubernetes"
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
// status writer's leader) writes.
type ConfigMapStore struct {
	Kube      kubernetes.Interface
	Namespace string
	Name      string // default mesh-pilot-rollouts
	Write     func() bool
	Log       *slog.Logger

	mu      sync.Mutex
	pending map[string]Saved
	wake    chan struct{}
}

func (s *ConfigMapStore) name() string {
	if s.Name == "" {
		return "mesh-pilot-rollouts"
	}
	return s.Name
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
	out := map[string]Saved{}
	for k, v := range cm.Data {
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
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run writes what is offered until ctx ends.
func (s *ConfigMapStore) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	s.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
		s.mu.Lock()
		all := s.pending
		s.mu.Unlock()
		if all == nil || s.Write != nil && !s.Write() {
			continue
		}
		if err := s.write(ctx, all); err != nil && ctx.Err() == nil {
			log := s.Log
			if log == nil {
				log = slog.Default()
			}
			log.Warn("keep rollout state", "configmap", s.Namespace+"/"+s.name(), "err", err)
		}
	}
}

func (s *ConfigMapStore) write(ctx context.Context, all map[string]Saved) error {
	data := map[string]string{}
	for id, sv := range all {
		b, err := json.Marshal(sv)
		if err != nil {
			return err
		}
		data[key(id)] = string(b)
	}
	cms := s.Kube.CoreV1().ConfigMaps(s.Namespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.name(), Namespace: s.Namespace,
		Labels: map[string]string{"app": "mesh-pilot"}}, Data: data}
	_, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "mesh-pilot"})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "mesh-pilot"})
	}
	return err
}

// saved is r's state to keep; false when there is nothing to resume
// (released everywhere, or no earlier version).
func (r *resource) saved() (Saved, bool) {
	if r.phase != Progressing && r.phase != RolledBack || r.applied == nil {
		return Saved{}, false
	}
	sv := Saved{ID: r.id, Generation: r.applied.GetGeneration(), Phase: r.phase, Stage: r.stage, Since: r.since, Revision: r.revision, Reason: r.reason}
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
