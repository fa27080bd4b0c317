package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/kube"
)

// Installer applies a prepared manifest to a cluster, waits for it, prunes
// what the rendering no longer has and records the installed state.
type Installer struct {
	Client *kube.Client
	// Wait makes the installer wait for each component to be ready before the next.
	Wait bool
	// ReadinessTimeout bounds the wait per component.
	ReadinessTimeout time.Duration
	// DryRun sends every request as a server-side dry run.
	DryRun bool
	// Progress, when set, receives events as the install goes.
	Progress func(Event)
	// Log receives debug detail; nil discards it.
	Log *slog.Logger
}

// NamespaceTerminatingError says the target namespace is being deleted.
type NamespaceTerminatingError struct{ Namespace string }

func (e *NamespaceTerminatingError) Error() string {
	return fmt.Sprintf("namespace %s is being deleted: wait until it is gone (kubectl get namespace %s) and run the command again", e.Namespace, e.Namespace)
}

func (i *Installer) emit(e Event) {
	if i.Progress != nil {
		i.Progress(e)
	}
}

func (i *Installer) log() *slog.Logger {
	if i.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return i.Log
}

// Run installs m. On failure or cancellation it takes back the webhook
// configurations this run created or changed, so no webhook is left pointing
// at a control plane that is not there.
func (i *Installer) Run(ctx context.Context, m Manifest, st State) (res *Result, err error) {
	res = &Result{Revision: m.Revision, DryRun: i.DryRun}
	ns, err := m.Namespace()
	if err != nil {
		return res, err
	}
	if err := CheckNamespace(ctx, i.Client, ns); err != nil {
		return res, err
	}
	if !i.DryRun {
		if err := i.recoverWebhooks(ctx, m.Revision); err != nil {
			return res, err
		}
	}
	wh := &webhookLedger{}
	defer func() {
		if err != nil && !i.DryRun {
			if rerr := i.rollbackWebhooks(context.WithoutCancel(ctx), wh); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	for _, c := range m.Components {
		cr, cerr := i.component(ctx, c, wh)
		res.Components = append(res.Components, cr)
		if cerr != nil {
			i.emit(Event{Kind: ComponentFailed, Component: c.Name, Result: &cr, Err: cerr})
			return res, fmt.Errorf("install component %s: %w", c.Name, cerr)
		}
		i.emit(Event{Kind: ComponentDone, Component: c.Name, Result: &cr})
	}
	prev, err := FindRecord(ctx, i.Client, m.Revision)
	if err != nil {
		return res, err
	}
	var prevKinds = m.Kinds()
	if prev != nil {
		prevKinds = append(prevKinds, prev.Kinds...)
	}
	pruned, err := i.prune(ctx, m, searchKinds(prevKinds, knownKinds))
	res.Pruned = pruned
	if err != nil {
		return res, err
	}
	i.emit(Event{Kind: PruneDone, Pruned: pruned})
	rec := recordObject(m.Revision, ns, st, m.Kinds())
	action, _, err := i.Client.Apply(ctx, rec, kube.ApplyOptions{DryRun: i.DryRun})
	if err != nil && i.DryRun && (apierrors.IsNotFound(err) || meta.IsNoMatchError(err)) {
		action, err = kube.Created, nil
	}
	if err != nil {
		return res, fmt.Errorf("record the installed state: %w", err)
	}
	res.Recorded = action
	return res, nil
}

// CheckNamespace refuses a target namespace that is being deleted: objects
// applied into it would vanish with it.
func CheckNamespace(ctx context.Context, c *kube.Client, name string) error {
	nsObj, err := c.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read namespace %s: %w", name, c.Explain(err))
	case nsObj.Status.Phase == corev1.NamespaceTerminating || nsObj.DeletionTimestamp != nil:
		return &NamespaceTerminatingError{Namespace: name}
	}
	return nil
}

// component applies one component in three steps: CRDs and namespaces (and
// waits until they are usable), the rest in parallel, then — once the rest is
// ready — its webhooks, so they never point at a server that is not up.
func (i *Installer) component(ctx context.Context, c Component, wh *webhookLedger) (ComponentResult, error) {
	cr := ComponentResult{Name: c.Name}
	i.emit(Event{Kind: ComponentStarted, Component: c.Name})
	var first, rest, hooks []*unstructured.Unstructured
	for _, o := range c.Objects {
		switch r := kube.RefOf(o); {
		case Shared(r):
			first = append(first, o)
		case IsWebhook(r):
			hooks = append(hooks, o)
		default:
			rest = append(rest, o)
		}
	}
	var mu sync.Mutex
	var settling []kube.Ref // CRDs and namespaces not yet usable
	record := func(o ObjectResult) {
		mu.Lock()
		cr.Objects = append(cr.Objects, o)
		mu.Unlock()
		i.emit(Event{Kind: ObjectApplied, Component: c.Name, Object: &o})
	}
	apply := func(ctx context.Context, o *unstructured.Unstructured) error {
		current, conflict := upToDate(o), ""
		if IsGatewayAPICRD(o) {
			current = func(live *unstructured.Unstructured) bool {
				switch v := JudgeGatewayAPICRD(o, live); {
				case v.Ours:
					return upToDate(o)(live)
				case v.Conflict != "":
					conflict = v.Conflict
				}
				// Another installation's CRD is never replaced: kept as it
				// is when compatible, refused below when not.
				return true
			}
		}
		action, live, err := i.Client.Apply(ctx, o, kube.ApplyOptions{DryRun: i.DryRun, Current: current})
		if err == nil && conflict != "" {
			err = fmt.Errorf("CRD %s belongs to another installation and %s: %s", o.GetName(), conflict, GatewayAPIRemedy(o.GetAnnotations()[annotationBundleVersion]))
		}
		if err != nil && i.DryRun && (apierrors.IsNotFound(err) || meta.IsNoMatchError(err)) {
			// A dry run creates nothing, so objects that need a namespace or a
			// CRD this rendering brings cannot be checked yet; they would be created.
			action, err = kube.Created, nil
		}
		if err != nil {
			return err
		}
		if Shared(kube.RefOf(o)) && (action != kube.Unchanged || !kube.ReadyNow(live)) {
			mu.Lock()
			settling = append(settling, kube.RefOf(o))
			mu.Unlock()
		}
		record(ObjectResult{Ref: kube.RefOf(o), Action: action})
		return nil
	}
	if err := kube.ForEach(ctx, first, apply); err != nil {
		return cr, err
	}
	if len(settling) > 0 && !i.DryRun {
		i.emit(Event{Kind: ComponentWaiting, Component: c.Name, Waiting: fmt.Sprintf("%d CRD(s) and namespace(s) to be usable", len(settling))})
		// Later objects may be custom resources of these CRDs.
		// Establishing CRDs is the API server's job and not what
		// --readiness-timeout is about, so it gets a generous bound of its own.
		if err := i.Client.WaitReady(ctx, settling, max(i.timeout(), 2*time.Minute)); err != nil {
			return cr, err
		}
		i.Client.ResetMapping()
	}
	if err := kube.ForEach(ctx, rest, apply); err != nil {
		return cr, err
	}
	if i.Wait && !i.DryRun && slices.ContainsFunc(rest, func(o *unstructured.Unstructured) bool { return kube.NeedsWait(kube.RefOf(o)) }) {
		i.emit(Event{Kind: ComponentWaiting, Component: c.Name, Waiting: "readiness"})
		if err := i.Client.WaitReady(ctx, refs(rest), i.timeout()); err != nil {
			return cr, err
		}
	}
	// One at a time, so an interruption leaves at most one webhook half-done.
	for _, o := range hooks {
		if err := ctx.Err(); err != nil {
			return cr, err
		}
		before, err := wh.remember(ctx, i.Client, o)
		if err != nil {
			return cr, err
		}
		action, _, err := i.Client.Apply(ctx, o, kube.ApplyOptions{DryRun: i.DryRun, Current: upToDate(o)})
		if err != nil {
			return cr, err
		}
		wh.applied(kube.RefOf(o), before, action)
		record(ObjectResult{Ref: kube.RefOf(o), Action: action})
	}
	order := map[string]int{}
	for n, o := range c.Objects {
		order[kube.RefOf(o).Key()] = n
	}
	slices.SortStableFunc(cr.Objects, func(a, b ObjectResult) int { return order[a.Ref.Key()] - order[b.Ref.Key()] })
	return cr, nil
}

func (i *Installer) timeout() time.Duration {
	if i.ReadinessTimeout <= 0 {
		return 5 * time.Minute
	}
	return i.ReadinessTimeout
}

func refs(objs []*unstructured.Unstructured) []kube.Ref {
	out := make([]kube.Ref, 0, len(objs))
	for _, o := range objs {
		out = append(out, kube.RefOf(o))
	}
	return out
}
