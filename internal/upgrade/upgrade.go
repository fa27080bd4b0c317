// Package upgrade is the workflow of `mesh upgrade`: plan the version
// change of an installed revision, precheck the cluster, install the new
// rendering over it, and verify the result. It lives apart from
// internal/install because the precheck step depends on install.
package upgrade

import (
	"context"
	"errors"
	"fmt"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/precheck"
	"mesh.dev/mesh/internal/version"
)

// Upgrade installs this version's rendering over an installed revision.
type Upgrade struct {
	install.Installer
	// Revision is the installed revision to upgrade ("" for the default).
	Revision string
	// Force allows a downgrade or a skip of more than one minor version.
	Force bool
	// Rendered is what to install; nil renders the revision's installed spec.
	Rendered *install.Rendered
	// Target is the version upgraded to; "" is this binary's version.
	Target string

	// Planned, when set, is shown the plan before the prechecks run.
	Planned func(*Plan)
	// Prechecked, when set, is shown the precheck report (passed or not).
	Prechecked func(*precheck.Report)
	// Confirm is asked after the prechecks passed, before anything changes.
	Confirm install.Confirm
}

// Plan is the move an upgrade makes.
type Plan struct {
	Record   *install.Record       `json:"-"`
	Revision string                `json:"revision"`
	Version  install.VersionChange `json:"version"`
	// FromProfile is the installed profile, ToProfile the new rendering's.
	FromProfile string            `json:"fromProfile,omitempty"`
	ToProfile   string            `json:"toProfile"`
	Rendered    *install.Rendered `json:"-"`
}

// Result is what an upgrade found and did, step by step; a step that did
// not run is nil.
type Result struct {
	Plan      *Plan                 `json:"plan"`
	Precheck  *precheck.Report      `json:"precheck,omitempty"`
	Install   *install.Result       `json:"install,omitempty"`
	Verify    *install.VerifyResult `json:"verify,omitempty"`
	Cancelled bool                  `json:"cancelled,omitempty"`
}

// PrecheckError says the prechecks failed; nothing was changed.
type PrecheckError struct{ Report *precheck.Report }

func (e *PrecheckError) Error() string { return "prechecks failed: nothing was changed" }

// VerifyError says the upgraded revision is not as rendered after the install finished.
type VerifyError struct{ Result *install.VerifyResult }

func (e *VerifyError) Error() string {
	r := e.Result
	return fmt.Sprintf("the upgrade finished but revision %s is not as rendered: %d missing, %d drifted, %d not ready, %d extra; `mesh verify-install` lists them",
		r.Revision, len(r.Missing), len(r.Drifted), len(r.NotReady), len(r.Extra))
}

// Run plans, prechecks, asks, installs and verifies. A version policy
// refusal is an *install.VersionPolicyError with the plan in the result.
func (u *Upgrade) Run(ctx context.Context) (*Result, error) {
	plan, err := u.plan(ctx)
	res := &Result{Plan: plan}
	if err != nil {
		return res, err
	}
	if u.Planned != nil {
		u.Planned(plan)
	}
	rep, err := (&precheck.Checker{Client: u.Client, Manifest: plan.Rendered.Manifest, Mode: precheck.ForUpgrade}).Run(ctx)
	if err != nil {
		return res, err
	}
	res.Precheck = rep
	if u.Prechecked != nil {
		u.Prechecked(rep)
	}
	if !rep.Installable {
		return res, &PrecheckError{Report: rep}
	}
	if !u.DryRun && u.Confirm != nil {
		ok, err := u.Confirm(fmt.Sprintf("Upgrade revision %s in %s?", plan.Revision, u.Client.Target))
		if err != nil {
			return res, err
		}
		if !ok {
			res.Cancelled = true
			return res, nil
		}
	}
	res.Install, err = u.Installer.Run(ctx, plan.Rendered.Manifest, plan.Rendered.State)
	if err != nil {
		return res, err
	}
	// Without waiting for readiness, workloads may rightly still be starting; a dry run changed nothing to verify.
	if u.DryRun || !u.Wait {
		return res, nil
	}
	res.Verify, err = (&install.Verifier{Client: u.Client}).Run(ctx, plan.Rendered.Manifest)
	if err != nil {
		return res, fmt.Errorf("verify the upgrade: %w", err)
	}
	if !res.Verify.Clean() {
		return res, &VerifyError{Result: res.Verify}
	}
	return res, nil
}

// plan reads the revision's record, checks the version move against the
// policy and renders what to install.
func (u *Upgrade) plan(ctx context.Context) (*Plan, error) {
	target := u.Target
	if target == "" {
		target = version.Get().Version
	}
	up := &install.Upgrader{Installer: u.Installer, Force: u.Force}
	rec, change, err := up.PlanUpgrade(ctx, u.Revision, target)
	var policy *install.VersionPolicyError
	if errors.As(err, &policy) {
		return &Plan{Revision: install.RevisionLabel(u.Revision), Version: change}, err
	}
	if err != nil {
		return nil, err
	}
	r := u.Rendered
	if r == nil {
		if r, err = install.RenderRecord(rec, u.Revision); err != nil {
			return nil, err
		}
	}
	p := &Plan{Record: rec, Revision: rec.Revision, Version: change, ToProfile: r.Operator.Spec.Profile, Rendered: r}
	p.FromProfile, _ = rec.Spec["profile"].(string)
	return p, nil
}
