package upgrade_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/precheck"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/internal/upgrade"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func answer(yes bool, asked *[]string) install.Confirm {
	return func(q string) (bool, error) {
		*asked = append(*asked, "confirm")
		return yes, nil
	}
}

// TestActions drives the install, upgrade and uninstall workflows the way
// the commands do, against the sandbox's API server: each step's typed
// result says what ran, and a "no" or a policy refusal changes nothing.
func TestActions(t *testing.T) {
	c, err := kube.NewClient(sandboxtest.Cluster(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	installer := install.Installer{Client: c, Wait: true, ReadinessTimeout: 2 * time.Minute}
	op, warnings, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=minimal"}})
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := install.Render(op, warnings)
	if err != nil {
		t.Fatal(err)
	}

	var asked []string
	out, err := (&install.Install{Installer: installer, Confirm: answer(false, &asked)}).Run(ctx, minimal)
	if err != nil || !out.Cancelled || out.Result != nil || len(asked) != 1 {
		t.Fatalf("install answered no: %+v, %v (asked %v)", out, err, asked)
	}
	if rec, err := install.FindRecord(ctx, c, ""); err != nil || rec != nil {
		t.Fatalf("an install answered no left an installed-state record: %+v, %v", rec, err)
	}
	out, err = (&install.Install{Installer: installer, Confirm: answer(true, &asked)}).Run(ctx, minimal)
	if err != nil || out.Cancelled || out.Result == nil || !out.Result.Changed() {
		t.Fatalf("install: %+v, %v", out, err)
	}

	// A major version jump is refused before the prechecks run.
	res, err := (&upgrade.Upgrade{Installer: installer, Target: "2.0.0"}).Run(ctx)
	var policy *install.VersionPolicyError
	if !errors.As(err, &policy) || res.Plan == nil || res.Plan.Version.To != "2.0.0" || res.Precheck != nil || res.Install != nil {
		t.Fatalf("upgrade to 2.0.0: %+v, %v; want a policy refusal with the plan and no later step", res, err)
	}

	// The steps run in order, and "no" stops before the install.
	var steps []string
	up := &upgrade.Upgrade{
		Installer:  installer,
		Planned:    func(*upgrade.Plan) { steps = append(steps, "planned") },
		Prechecked: func(*precheck.Report) { steps = append(steps, "prechecked") },
		Confirm:    answer(false, &steps),
	}
	res, err = up.Run(ctx)
	if err != nil || !res.Cancelled || res.Install != nil || res.Precheck == nil || !res.Precheck.Installable {
		t.Fatalf("upgrade answered no: %+v, %v", res, err)
	}
	if want := []string{"planned", "prechecked", "confirm"}; !slices.Equal(steps, want) {
		t.Errorf("upgrade steps %v, want %v", steps, want)
	}

	// Without a rendering the upgrade reinstalls the installed spec and verifies it.
	up.Confirm = answer(true, &steps)
	res, err = up.Run(ctx)
	if err != nil || res.Install == nil || res.Verify == nil || !res.Verify.Clean() {
		t.Fatalf("upgrade: %+v, %v; want an install and a clean verify", res, err)
	}
	if res.Plan.FromProfile != "minimal" || res.Plan.ToProfile != "minimal" || res.Plan.Version.Kind != "same" {
		t.Errorf("upgrade plan %+v, want minimal → minimal at the same version", res.Plan)
	}

	un := &install.Uninstall{Uninstaller: install.Uninstaller{Client: c, Wait: true, Timeout: 2 * time.Minute}, Confirm: answer(false, &asked)}
	uo, err := un.Run(ctx)
	if err != nil || !uo.Cancelled || uo.Result != nil || uo.Plan.Empty() {
		t.Fatalf("uninstall answered no: %+v, %v", uo, err)
	}
	if rec, err := install.FindRecord(ctx, c, ""); err != nil || rec == nil {
		t.Fatalf("an uninstall answered no removed the record: %v", err)
	}
	un.Confirm = answer(true, &asked)
	if uo, err = un.Run(ctx); err != nil || uo.Result == nil || len(uo.Result.Deleted) == 0 {
		t.Fatalf("uninstall: %+v, %v", uo, err)
	}
	if uo, err = un.Run(ctx); err != nil || !uo.Plan.Empty() || uo.Result != nil {
		t.Fatalf("second uninstall: %+v, %v; want nothing to do", uo, err)
	}
}
