// Package status writes Istio's status on the config resources pilot reads,
// as istiod does with status enabled: a validationMessages entry and a
// condition naming what the mesh does not carry out (from the field table,
// internal/enforced), cleared once the resource is fixed. One pilot replica
// writes at a time, elected with a Lease.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	metav1alpha1 "istio.io/api/meta/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/authz"
	"mesh.dev/mesh/internal/enforced"
	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// ConditionType is the condition pilot owns on a resource's status: False
// with the paths the mesh does not carry out; absent when it carries out all.
const ConditionType = enforced.ConditionType

// MessageCode is the analyzer code of the validation message pilot writes
// (the same as `mesh analyze` reports).
const MessageCode = "MSH0003"

// Writer keeps the status of the resources in the latest snapshot in step
// with the field table, while it holds the lease.
type Writer struct {
	Istio      istioclient.Interface
	GatewayAPI gwclient.Interface // nil: no Gateway API status
	// Dynamic writes the status of mesh's own kinds (MetaRoute); nil: none.
	Dynamic   dynamic.Interface
	Kube      kubernetes.Interface
	Namespace string // where the Lease lives
	LeaseName string // default mesh-pilot-status
	Identity  string // default the hostname
	Log       *slog.Logger
	// LeaseDuration, RenewDeadline, RetryPeriod tune the election (defaults
	// 15s, 10s, 2s as client-go recommends).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Also is other work one replica does per snapshot, run by the leader
	// after the status (the Gateway API automated deployment).
	Also []Task
	// Rollouts, when set, gives the staged releases this replica runs:
	// each resource with one gets the condition RolloutCondition.
	Rollouts func() []rollout.Status
	// OnLead, when set, is called (on its own goroutine) with the term's
	// context each time this replica starts leading: the rollout manager
	// steps the rollouts while the term lasts.
	OnLead func(ctx context.Context)

	mu     sync.Mutex
	latest *model.Snapshot
	wake   chan struct{}
	// written remembers what this replica last wrote, by object, so an
	// unchanged resource costs no request.
	written map[string]string
	leading atomic.Bool
}

// Leading reports whether this replica holds the lease now (it is the
// one that writes for all: status, and pilot's Kubernetes Events).
func (w *Writer) Leading() bool { return w.leading.Load() }

// Task is work the leader does on every snapshot.
type Task interface {
	Sync(ctx context.Context, s *model.Snapshot, log *slog.Logger)
	// Forget drops what the task remembers of its writes, when a new term
	// starts.
	Forget()
}

// Poke has the writer write again without a new snapshot (a rollout
// stepped); it never blocks.
func (w *Writer) Poke() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Offer hands the writer a new snapshot; it never blocks.
func (w *Writer) Offer(s *model.Snapshot) {
	w.init()
	w.mu.Lock()
	w.latest = s
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Writer) init() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
		w.written = map[string]string{}
	}
}

// Run takes part in the election until ctx ends, writing while leader.
func (w *Writer) Run(ctx context.Context) error {
	w.init()
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	id := w.Identity
	if id == "" {
		id, _ = os.Hostname()
		id += fmt.Sprintf("-%d", os.Getpid())
	}
	name := w.LeaseName
	if name == "" {
		name = "mesh-pilot-status"
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: w.Namespace},
		Client:     w.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   orDefault(w.LeaseDuration, 15*time.Second),
			RenewDeadline:   orDefault(w.RenewDeadline, 10*time.Second),
			RetryPeriod:     orDefault(w.RetryPeriod, 2*time.Second),
			ReleaseOnCancel: true,
			Name:            name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					w.leading.Store(true)
					defer w.leading.Store(false)
					log.Info("status writer leading", "lease", w.Namespace+"/"+name, "identity", id)
					if w.OnLead != nil {
						go w.OnLead(ctx)
					}
					w.lead(ctx, log)
				},
				OnStoppedLeading: func() { log.Info("status writer stopped leading", "identity", id) },
			},
		})
		if err != nil {
			return fmt.Errorf("status leader election: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// lead writes every snapshot offered while ctx (the leadership) lasts.
func (w *Writer) lead(ctx context.Context, log *slog.Logger) {
	// A new leader does not trust what an earlier term remembered.
	w.mu.Lock()
	w.written = map[string]string{}
	w.mu.Unlock()
	for _, t := range w.Also {
		t.Forget()
	}
	for {
		w.mu.Lock()
		s := w.latest
		w.mu.Unlock()
		if s != nil {
			w.sync(ctx, s, log)
			for _, t := range w.Also {
				t.Sync(ctx, s, log)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
	}
}

// object is one resource as the writer handles it.
type object struct {
	kind       string
	meta       *metav1.ObjectMeta
	spec       proto.Message
	goSpec     any // mesh's own kinds: the Go spec the field table walks by JSON name (enforced.Struct)
	conditions *[]*metav1alpha1.IstioCondition
	messages   *[]*analysisv1alpha1.AnalysisMessageBase
	observed   *int64
	gateway    *networkingv1.Gateway           // set for Gateways: their credentials are checked too
	dr         *networkingv1.DestinationRule   // set for DestinationRules: their client credentials are checked too
	update     func(ctx context.Context) error // writes the object's status as it is now
	// reload reads the object as the API server has it now (nil: no
	// client to read it with).
	reload func(ctx context.Context) (object, error)
}

func (w *Writer) sync(ctx context.Context, s *model.Snapshot, log *slog.Logger) {
	defer w.syncGatewayAPI(ctx, s, log)
	rollouts := map[string]*rollout.Status{}
	if w.Rollouts != nil {
		for _, st := range w.Rollouts() {
			rollouts[st.ID] = &st
		}
	}
	for _, o := range objects(w.clients(), s) {
		if ctx.Err() != nil {
			return
		}
		if o.meta.Annotations[gatewayapi.AnnotationGeneratedFrom] != "" {
			continue // made from Gateway API objects, which get their own status
		}
		key := o.kind + "/" + o.meta.Namespace + "/" + o.meta.Name
		var findings []enforced.Finding
		if o.spec != nil {
			findings = authz.Findings(o.kind, o.spec)
		} else {
			findings = enforced.Struct(o.kind, o.goSpec)
		}
		if ap, ok := o.spec.(*securityapi.AuthorizationPolicy); ok {
			known := func(ns, host string) bool {
				svc := s.ServiceByHost(host)
				return svc != nil && (ns == "" || svc.Namespace == ns)
			}
			if f := authz.ProviderFinding(ap, s.Mesh, known); f != nil {
				findings = append(findings, *f)
			}
		}
		var paths []string
		for _, f := range findings {
			paths = append(paths, f.String())
		}
		reports := []report{notEnforced(paths)}
		if o.gateway != nil {
			reports = append(reports, invalidCredentials(s.GatewayCredentialProblems(o.gateway)))
		}
		if o.dr != nil {
			reports = append(reports, invalidClientCredentials(s.ClientCredentialProblems(o.dr)))
		}
		reports = append(reports, rolloutReport(rollouts[key]))
		var wants []string
		for _, r := range reports {
			wants = append(wants, r.text)
		}
		// The UID too: an object deleted and made again under the same
		// name starts again at generation 1, without pilot's conditions.
		want := string(o.meta.UID) + "|" + strings.Join(wants, "|")
		w.mu.Lock()
		done := w.written[key] == fmt.Sprint(o.meta.Generation, "|", want)
		w.mu.Unlock()
		if done {
			continue
		}
		if !applyAll(o, reports) {
			w.remember(key, o.meta.Generation, want)
			continue
		}
		err := o.update(ctx)
		if apierrors.IsConflict(err) && o.reload != nil {
			// The snapshot has the object as its last change of spec or
			// metadata left it, and a status written since (by this
			// writer too) is no new snapshot: a rollout step without a
			// change (a soak ending) would never be written. Write on
			// the object as it is now, if it is the same generation.
			var fresh object
			if fresh, err = o.reload(ctx); err == nil {
				if fresh.meta.Generation != o.meta.Generation || fresh.meta.UID != o.meta.UID {
					continue // the next snapshot has it
				}
				if applyAll(fresh, reports) {
					err = fresh.update(ctx)
				}
			}
		}
		if err != nil {
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				log.Warn("write status", "resource", key, "err", err)
			}
			continue // the next snapshot (the object changed) tries again
		}
		w.remember(key, o.meta.Generation, want)
	}
}

func (w *Writer) clients() model.StatusClients {
	return model.StatusClients{Istio: w.Istio, GatewayAPI: w.GatewayAPI, Dynamic: w.Dynamic}
}

func (w *Writer) remember(key string, gen int64, want string) {
	w.mu.Lock()
	w.written[key] = fmt.Sprint(gen, "|", want)
	w.mu.Unlock()
}

// applyAll applies each report to o, reporting whether any changed it.
func applyAll(o object, reports []report) bool {
	changed := false
	for _, r := range reports {
		if apply(o, r) {
			changed = true
		}
	}
	return changed
}

// report is one condition pilot owns on a resource, with the validation
// message of the same analyzer code; an empty text clears both.
type report struct {
	condition, reason string
	code, name        string // "": a condition without a validation message
	level             analysisv1alpha1.AnalysisMessageBase_Level
	text              string
	status            string // the condition's status; "" is False
}

func notEnforced(paths []string) report {
	r := report{condition: ConditionType, reason: "NotEnforced", code: MessageCode, name: "NotEnforced", level: analysisv1alpha1.AnalysisMessageBase_WARNING}
	if len(paths) > 0 {
		r.text = fmt.Sprintf("%d setting(s) not enforced by this mesh: %s", len(paths), strings.Join(paths, "; "))
	}
	return r
}

// CredentialCondition is the condition pilot sets False on a Gateway with
// servers it does not serve because their credentialName Secret is missing
// or unusable (IST0161, as `mesh analyze` reports it), and on a
// DestinationRule whose tls.credentialName it does not serve to a gateway
// seeing the rule (MSH0005).
const CredentialCondition = "mesh.io/CredentialsServed"

func invalidCredentials(problems []string) report {
	r := report{condition: CredentialCondition, reason: "InvalidGatewayCredential", code: "IST0161", name: "InvalidGatewayCredential", level: analysisv1alpha1.AnalysisMessageBase_ERROR}
	if len(problems) > 0 {
		r.text = fmt.Sprintf("%d server(s) not served: %s", len(problems), strings.Join(problems, "; "))
	}
	return r
}

// ClientCredentialCode is the analyzer code of the validation message
// pilot writes on a DestinationRule whose tls.credentialName a gateway
// seeing it cannot use (MSH0005 InvalidClientCredential, as `mesh analyze`
// reports it), with the condition CredentialCondition False. Istio's
// analyzers have no message for it.
const ClientCredentialCode = "MSH0005"

func invalidClientCredentials(problems []string) report {
	r := report{condition: CredentialCondition, reason: "InvalidClientCredential", code: ClientCredentialCode, name: "InvalidClientCredential", level: analysisv1alpha1.AnalysisMessageBase_ERROR}
	if len(problems) > 0 {
		r.text = fmt.Sprintf("%d client credential(s) not served, so the gateways' TLS origination with them fails: %s", len(problems), strings.Join(problems, "; "))
	}
	if len(r.text) > 1024 {
		r.text = r.text[:1021] + "..."
	}
	return r
}

// apply sets one of pilot's parts of the status (a condition and its
// validation message), keeping what others wrote; it reports whether
// anything changed.
func apply(o object, r report) bool {
	var conds []*metav1alpha1.IstioCondition
	var mine *metav1alpha1.IstioCondition
	for _, c := range *o.conditions {
		if c.GetType() == r.condition {
			mine = c
			continue
		}
		conds = append(conds, c)
	}
	var msgs []*analysisv1alpha1.AnalysisMessageBase
	hadMsg := r.code == "" // no message of its own: nothing to look for
	for _, m := range *o.messages {
		if r.code != "" && m.GetType().GetCode() == r.code {
			hadMsg = true
			continue
		}
		msgs = append(msgs, m)
	}
	status := r.status
	if status == "" {
		status = "False"
	}
	if r.text == "" {
		if mine == nil && (r.code == "" || !hadMsg) {
			return false
		}
		*o.conditions, *o.messages = conds, msgs
		return true
	}
	if mine != nil && hadMsg && mine.GetStatus() == status && mine.GetReason() == r.reason && mine.GetMessage() == r.text && mine.GetObservedGeneration() == o.meta.Generation {
		return false
	}
	now := timestamppb.Now()
	c := &metav1alpha1.IstioCondition{Type: r.condition, Status: status, Reason: r.reason, Message: r.text,
		LastProbeTime: now, LastTransitionTime: now, ObservedGeneration: o.meta.Generation}
	if mine != nil && mine.GetStatus() == status {
		c.LastTransitionTime = mine.GetLastTransitionTime()
	}
	*o.conditions = append(conds, c)
	if r.code != "" {
		msgs = append(msgs, &analysisv1alpha1.AnalysisMessageBase{
			Type:  &analysisv1alpha1.AnalysisMessageBase_Type{Name: r.name, Code: r.code},
			Level: r.level,
		})
	}
	*o.messages = msgs
	*o.observed = o.meta.Generation
	return true
}

// objects lists the snapshot's resources of every kind with Istio's
// status in pilot's kind table (model.Kinds, the Status column), as
// copies the writer may change; a kind whose API has no client here is
// left out.
func objects(c model.StatusClients, s *model.Snapshot) []object {
	var out []object
	for _, k := range model.Kinds {
		if k.Status == nil || k.Status.Istio == nil || !c.Has(k) {
			continue
		}
		for _, orig := range k.Objects(s) {
			out = append(out, newObject(c, k, orig.(runtime.Object).DeepCopyObject().(metav1.Object)))
		}
	}
	return out
}

// newObject is x, an object of kind k the writer may change, as the
// writer handles it.
func newObject(c model.StatusClients, k *model.Kind, x metav1.Object) object {
	spec, st := k.Status.Istio(x)
	o := object{kind: k.AnalyzerKind, meta: metaOf(x), conditions: st.Conditions, messages: st.Messages, observed: st.Observed,
		update: func(ctx context.Context) error { return k.Status.Update(ctx, c, x) }}
	if m, ok := spec.(proto.Message); ok {
		o.spec = m
	} else {
		o.goSpec = spec
	}
	switch x := x.(type) {
	case *networkingv1.Gateway:
		o.gateway = x
	case *networkingv1.DestinationRule:
		o.dr = x
	}
	if c.Dynamic != nil {
		o.reload = func(ctx context.Context) (object, error) {
			fresh, err := reload(ctx, c.Dynamic, k, x)
			if err != nil {
				return object{}, err
			}
			return newObject(c, k, fresh), nil
		}
	}
	return o
}

// reload reads x, an object of kind k, as the API server has it now, into
// a new object of x's Go type.
func reload(ctx context.Context, dyn dynamic.Interface, k *model.Kind, x metav1.Object) (metav1.Object, error) {
	u, err := dyn.Resource(k.GVK.GroupVersion().WithResource(k.Plural)).Namespace(x.GetNamespace()).Get(ctx, x.GetName(), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	fresh := reflect.New(reflect.TypeOf(x).Elem()).Interface().(metav1.Object)
	if err := json.Unmarshal(raw, fresh); err != nil {
		return nil, fmt.Errorf("read %s %s/%s: %w", k.GVK.Kind, x.GetNamespace(), x.GetName(), err)
	}
	return fresh, nil
}

// metaOf returns the object's metadata, which the writer reads and the
// update writes.
func metaOf(o metav1.Object) *metav1.ObjectMeta {
	return o.(interface{ GetObjectMeta() metav1.Object }).GetObjectMeta().(*metav1.ObjectMeta)
}

// RolloutCondition is the condition pilot keeps on a resource with a
// staged release (docs/rollout.md): True once its applied version is
// released to every proxy, False while it rolls out (reason Progressing),
// after a rollback (RolledBack) or while its annotations are wrong (Held).
const RolloutCondition = "mesh.io/RolloutReleased"

func rolloutReport(st *rollout.Status) report {
	r := report{condition: RolloutCondition}
	if st == nil {
		return r // no rollout: no condition
	}
	r.reason = string(st.Phase)
	switch st.Phase {
	case rollout.Released:
		r.status = "True"
		r.text = fmt.Sprintf("generation %d is released to every proxy", st.Generation)
	case rollout.Progressing:
		r.text = fmt.Sprintf("generation %d at stage %d of %d (%d%%): on %d of the %d proxies it affects, the others on the released version",
			st.Generation, st.Stage, len(st.Stages), st.Stages[st.Stage-1], len(st.Staged), st.Affected)
		if st.NextStep != nil {
			r.text += "; next step at " + st.NextStep.UTC().Format(time.RFC3339)
		}
	default:
		r.text = fmt.Sprintf("generation %d: %s", st.Generation, st.Reason)
	}
	if len(r.text) > 1024 {
		r.text = r.text[:1021] + "..."
	}
	return r
}
