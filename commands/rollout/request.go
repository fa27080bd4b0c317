package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// Action is what a request asks of a running rollout.
type Action string

// The actions.
const (
	Promote Action = "promote"
	Abort   Action = "abort"
)

// RequestOptions holds the flags of `mesh rollout promote` and `abort`:
// both write a request on the resource through the Kubernetes API (under
// the user's RBAC: patch on the resource), which every pilot replica
// reads, and wait until each replica has carried it out.
type RequestOptions struct {
	*cli.Context
	cmdutil.PilotFlags
	Action Action
	// All (promote) releases to every proxy now instead of moving on one stage.
	All     bool
	Wait    bool
	Timeout time.Duration
	// Poll is how often pilot is asked while waiting (default 250ms).
	Poll time.Duration

	ref rollout.Ref
}

func newRequestCommand(ctx *cli.Context, a Action) *cobra.Command {
	o := &RequestOptions{Context: ctx, Action: a}
	cmd := &cobra.Command{
		Use:  string(a) + " KIND/NAME",
		Args: cobra.ExactArgs(1),
		RunE: cmdutil.Run(o),
	}
	switch a {
	case Promote:
		cmd.Short = "Move a rollout on to its next stage now, without waiting out the soak"
		cmd.Long = `Move the running rollout of a resource on to its next stage now (with --all,
release the change to every proxy now).

The request is written on the resource as the annotation ` + rollout.AnnotationPromote + `
("GENERATION/STAGE": the change and the stage it moves on from), so it needs
patch permission on the resource; every mesh-pilot replica carries it out, and
a request that has been carried out does nothing more. The command then waits
until every replica reports the new stage (--wait=false returns at once).

Exit status: 0 when carried out, 1 when there is no rollout running, pilot
serves an older version of the resource than the API server holds, or the wait
timed out; 64 for a bad argument or flag.`
		cmd.Example = `  mesh rollout promote -n default VirtualService/reviews
  mesh rollout promote VirtualService/default/reviews --all`
		cmd.Flags().BoolVar(&o.All, "all", false, "release the change to every proxy now, skipping the remaining stages")
	case Abort:
		cmd.Short = "Roll a running rollout back now: every proxy goes back to the released version"
		cmd.Long = `Roll the running rollout of a resource back now: every proxy is served the
released version again, as when a health gate fails. The resource as applied
is then not served until its spec changes again.

The request is written on the resource as the annotation ` + rollout.AnnotationAbort + `
("GENERATION": the change to roll back), so it needs patch permission on the
resource; every mesh-pilot replica carries it out. The command then waits
until every replica reports RolledBack (--wait=false returns at once).

Exit status: 0 when carried out, 1 when there is no rollout running, pilot
serves an older version of the resource than the API server holds, or the wait
timed out; 64 for a bad argument or flag.`
		cmd.Example = `  mesh rollout abort -n default VirtualService/reviews`
	}
	o.PilotFlags.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Wait, "wait", true, "wait until every pilot replica has carried the request out")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", time.Minute, "how long to wait for pilot")
	return cmd
}

// Complete resolves the resource argument.
func (o *RequestOptions) Complete(_ *cobra.Command, args []string) error {
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	if o.ref, err = rollout.ParseRef(args[0], ns); err != nil {
		return cli.Usage(err)
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	return nil
}

// Validate checks the flags.
func (o *RequestOptions) Validate() error {
	if o.Action != Promote && o.Action != Abort {
		return cli.Usagef("unknown rollout action %q", o.Action)
	}
	if o.Wait && o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive, got %s", o.Timeout)
	}
	return nil
}

// Run writes the request and waits for pilot to carry it out.
func (o *RequestOptions) Run(ctx context.Context) error {
	id := o.ref.ID()
	return o.WithPilots(ctx, o.Context, func(ps []cmdutil.Pilot) error {
		before, err := statusesOf(ctx, ps, id)
		if err != nil {
			return err
		}
		// The rollout as the replicas run it: the furthest stage any
		// has reached (a request moves on from there; one behind
		// catches up).
		var cur *Row
		for i := range before {
			s := &before[i]
			if s.Phase != rollout.Progressing {
				continue
			}
			if cur == nil || s.Stage > cur.Stage {
				cur = s
			}
		}
		if cur == nil {
			return fmt.Errorf("%s is not rolling out (%s): nothing to %s", id, describe(before), o.Action)
		}
		gen, err := o.request(ctx, cur)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s: %s requested for generation %d (at stage %d of %d)\n", id, o.Action, gen, cur.Stage, len(cur.Stages))
		if !o.Wait {
			return nil
		}
		done := func(s rollout.Status) bool {
			switch {
			case s.Generation != gen:
				return false
			case o.Action == Abort:
				return s.Phase == rollout.RolledBack
			case o.All:
				return s.Phase == rollout.Released
			default:
				return s.Phase == rollout.Released || s.Phase == rollout.Progressing && s.Stage > cur.Stage
			}
		}
		wctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		for {
			after, err := statusesOf(wctx, ps, id)
			if err == nil {
				all := len(after) == len(ps)
				for _, s := range after {
					all = all && done(s.Status)
				}
				if all {
					printOutcome(o.Out, after)
					return nil
				}
			}
			select {
			case <-wctx.Done():
				if err == nil {
					err = errors.New(describe(after))
				}
				return fmt.Errorf("%s: pilot did not carry the %s out within %s: %v", id, o.Action, o.Timeout, err)
			case <-time.After(o.Poll):
			}
		}
	})
}

// request writes the promote or abort annotation for the candidate cur
// reports, once the API server's version is the one pilot stages.
func (o *RequestOptions) request(ctx context.Context, cur *Row) (int64, error) {
	cfg, err := o.RESTConfig()
	if err != nil {
		return 0, fmt.Errorf("kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	k := o.ref.Kind
	res := dyn.Resource(schema.GroupVersionResource{Group: k.GVK.Group, Version: k.GVK.Version, Resource: k.Plural}).Namespace(o.ref.Namespace)
	// The patch carries the resourceVersion read, so a change made
	// meanwhile fails it; pilot's own status writes change the
	// resourceVersion too (not the generation), so a conflict is read
	// again and retried while the generation is still the one pilot stages.
	for attempt := 0; ; attempt++ {
		obj, err := res.Get(ctx, o.ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return 0, fmt.Errorf("%s: not found in the cluster (pilot still reports its rollout; it may have just been deleted)", o.ref.ID())
			}
			return 0, fmt.Errorf("read %s: %w", o.ref.ID(), err)
		}
		gen := obj.GetGeneration()
		if gen != cur.Generation {
			return 0, fmt.Errorf("%s: pilot stages generation %d but the cluster holds generation %d (a newer change is on its way to pilot); run mesh rollout status and try again", o.ref.ID(), cur.Generation, gen)
		}
		key, value := rollout.AnnotationAbort, rollout.AbortValue(gen)
		if o.Action == Promote {
			key, value = rollout.AnnotationPromote, rollout.PromoteValue(gen, cur.Stage, o.All)
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": obj.GetResourceVersion(),
			"annotations":     map[string]string{key: value},
		}})
		if err != nil {
			return 0, err
		}
		_, err = res.Patch(ctx, o.ref.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "mesh-rollout"})
		switch {
		case err == nil:
			return gen, nil
		case apierrors.IsConflict(err) && attempt < 5:
			continue
		case apierrors.IsConflict(err):
			return 0, fmt.Errorf("%s kept changing while the request was written; run mesh rollout status and try again: %w", o.ref.ID(), err)
		default:
			return 0, fmt.Errorf("write the %s request on %s: %w", o.Action, o.ref.ID(), err)
		}
	}
}

// statusesOf asks every replica for id's rollout; a replica that has none
// is left out.
func statusesOf(ctx context.Context, ps []cmdutil.Pilot, id string) ([]Row, error) {
	var out []Row
	for _, p := range ps {
		sts, err := p.Client.Rollouts(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		for _, s := range sts {
			if s.ID == id {
				out = append(out, Row{Status: s, Pilot: p.Name})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no rollout (no %s annotation, or no change since pilot started)", id, rollout.AnnotationStages)
	}
	return out, nil
}

// describe says where each replica has the rollout.
func describe(rows []Row) string {
	var parts []string
	for _, r := range rows {
		p := string(r.Phase)
		if r.Phase == rollout.Progressing {
			p = fmt.Sprintf("stage %d of %d", r.Stage, len(r.Stages))
		}
		if r.Reason != "" {
			p += ": " + r.Reason
		}
		parts = append(parts, r.Pilot+" reports "+p)
	}
	return strings.Join(parts, "; ")
}

func printOutcome(w io.Writer, rows []Row) {
	for _, r := range rows {
		switch r.Phase {
		case rollout.Progressing:
			fmt.Fprintf(w, "%s: stage %d of %d (%d%% of the affected proxies) on %s\n", r.ID, r.Stage, len(r.Stages), r.Stages[r.Stage-1], r.Pilot)
		case rollout.Released:
			fmt.Fprintf(w, "%s: released to every proxy (Promoted) on %s\n", r.ID, r.Pilot)
		default:
			fmt.Fprintf(w, "%s: %s on %s: %s\n", r.ID, r.Phase, r.Pilot, r.Reason)
		}
	}
}
