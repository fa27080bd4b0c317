package install

import (
	"context"
	"fmt"
	"strings"
)

// Confirm asks a yes/no question before a workflow changes anything; a
// workflow with a nil Confirm goes ahead without asking.
type Confirm func(question string) (bool, error)

func (c Confirm) ask(q string) (bool, error) {
	if c == nil {
		return true, nil
	}
	return c(q)
}

// Install is the workflow of `mesh install`: refuse a target namespace
// that is being deleted, ask, then apply, prune and record (Installer).
type Install struct {
	Installer
	// Confirm is asked once the cluster was checked and before anything is applied.
	Confirm Confirm
}

// InstallOutcome is what an install did; Result is nil when it was cancelled.
type InstallOutcome struct {
	Result    *Result
	Cancelled bool
}

// Run installs r into the cluster.
func (a *Install) Run(ctx context.Context, r *Rendered) (*InstallOutcome, error) {
	ns, err := r.Manifest.Namespace()
	if err != nil {
		return nil, err
	}
	if err := CheckNamespace(ctx, a.Client, ns); err != nil {
		return nil, err
	}
	if !a.DryRun {
		q := fmt.Sprintf("Install mesh %s (profile %s, revision %s: %s) into %s?",
			r.State.Version, r.Operator.Spec.Profile, r.Manifest.Revision, componentList(r.Manifest), a.Client.Target)
		ok, err := a.Confirm.ask(q)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &InstallOutcome{Cancelled: true}, nil
		}
	}
	res, err := a.Installer.Run(ctx, r.Manifest, r.State)
	return &InstallOutcome{Result: res}, err
}

func componentList(m Manifest) string {
	names := make([]string, 0, len(m.Components))
	for _, c := range m.Components {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// Uninstall is the workflow of `mesh uninstall`: plan what goes, show the
// plan, ask, delete (Uninstaller).
type Uninstall struct {
	Uninstaller
	// Planned, when set, is shown the plan before anything is asked or deleted.
	Planned func(*UninstallPlan)
	Confirm Confirm
}

// UninstallOutcome is what an uninstall found and did; Result is nil when
// there was nothing to remove or the user cancelled.
type UninstallOutcome struct {
	Plan      *UninstallPlan
	Result    *UninstallResult
	Cancelled bool
}

// Run removes the revision.
func (a *Uninstall) Run(ctx context.Context) (*UninstallOutcome, error) {
	plan, err := a.Plan(ctx)
	if err != nil {
		return nil, err
	}
	out := &UninstallOutcome{Plan: plan}
	if plan.Empty() {
		return out, nil
	}
	if a.Planned != nil {
		a.Planned(plan)
	}
	if !a.DryRun {
		q := fmt.Sprintf("Remove mesh revision %s from %s?", plan.Revision, a.Client.Target)
		if a.Purge && plan.UserCount() > 0 {
			q = fmt.Sprintf("Remove mesh revision %s from %s and DELETE %d user resource(s)?", plan.Revision, a.Client.Target, plan.UserCount())
		}
		ok, err := a.Confirm.ask(q)
		if err != nil {
			return out, err
		}
		if !ok {
			out.Cancelled = true
			return out, nil
		}
	}
	out.Result, err = a.Uninstaller.Run(ctx, plan)
	return out, err
}
