package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// The rollout benchmark (#20) runs the pilot bench's mesh (1,000 services,
// 5,000 endpoints, 2,000 delta ADS clients in a child process) with a
// rollout Manager in front of the xDS server, as mesh-pilot runs, and
// svc-10's VirtualService (seen by every proxy) annotated
// rollout.mesh.io/stages "10,50,100". The Manager's clock is a fake one, so
// a stage's soak ends when the bench says and only the push is timed.
//
//   - With no rollout active, the full and endpoint-only pushes of the pilot
//     bench are timed through the Manager and, alternating with them in the
//     same run, straight to the xDS server (as the pilot bench does): the
//     Manager's cost on ordinary pushes.
//   - Then several changes of svc-10's routes are rolled out, and each step
//     is timed from the change (or the end of the stage's soak) until every
//     proxy that step gives the candidate has ACKed the new routes: the
//     start (stage 1, 10%), the step to stage 2 (50%) and the release (100%).
//     The proxies sent anything meanwhile are counted: exactly those the
//     step gives the candidate should be.
//   - During stage 2 an endpoint-only push is timed too: while a rollout is
//     in flight every push regenerates the staged proxies.
func init() {
	register(Bench{Name: "rollout", Issue: 20, Run: benchRollout})
}

const (
	rolloutRounds = 5 // no-rollout pushes of each kind, each way
	rolloutRuns   = 3 // rollouts, each start, step and release timed
	rolloutBudget = 6 * time.Minute
	rolloutStages = "10,50,100" // svc-10's VirtualService's rollout.mesh.io/stages
	rolloutVS     = 1           // svc-10's, in the synthetic world's VirtualServices
)

func benchRollout(_ *Env) ([]Row, error) {
	load := loadAverage()
	ctx, cancel := context.WithTimeout(context.Background(), rolloutBudget)
	defer cancel()
	defer asMeshPilot()()
	proxies := benchProxies()

	rig, err := newPilotRig(ctx, proxies, false, false)
	if err != nil {
		return nil, err
	}
	defer rig.close()
	clock := rollout.NewFakeClock(time.Now())
	mgr := &rollout.Manager{Clock: clock, Log: slog.New(slog.DiscardHandler), Push: rig.server.UpdateStaged}
	rig.server.OnReject = mgr.Reject
	// The staged VirtualService is svc-10's, not svc-0's: the full push
	// changes svc-0's, and must start no rollout.
	vs := rig.world.In.VirtualServices[rolloutVS].DeepCopy()
	vs.Annotations = map[string]string{rollout.AnnotationStages: rolloutStages, rollout.AnnotationInterval: "60s"}
	rig.world.In.VirtualServices[rolloutVS] = vs
	change := func() { // shifts svc-10's traffic split: a new candidate
		vs := rig.world.In.VirtualServices[rolloutVS].DeepCopy()
		w := vs.Spec.Http[0].Route[1].Weight%50 + 5
		vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = 100-w, w
		rig.world.In.VirtualServices[rolloutVS] = vs
		rig.version++
		rig.update(rig.world.Snapshot(rig.version), model.Change{Full: true})
	}
	id, err := rollout.ParseID("VirtualService/"+vs.Namespace+"/"+vs.Name, "")
	if err != nil {
		return nil, err
	}
	viaManager := func(on bool) {
		rig.offer = nil
		if on {
			rig.offer = mgr.Offer
		}
	}
	viaManager(true)
	rig.version++
	rig.update(rig.world.Snapshot(rig.version), model.Change{Full: true}) // pilot's start: the annotated VirtualService is released as it is

	// The Manager's own work on a push with no rollout active (it reads
	// every config resource's annotations and hands the snapshot on),
	// with the xDS server's push left out.
	var own []time.Duration
	{
		idle := &rollout.Manager{Clock: rollout.NewFakeClock(time.Now()), Log: slog.New(slog.DiscardHandler),
			Push: func(*model.Snapshot, model.Change, rollout.Plan) map[string]rollout.Counts { return nil }}
		for i := 0; i < 21; i++ {
			snap := rig.world.Snapshot(uint64(i + 1))
			t0 := time.Now()
			idle.Offer(snap, model.Change{Full: true})
			own = append(own, time.Since(t0))
		}
	}

	slog.Info("rollout bench: connecting", "proxies", proxies)
	if err := rig.startClients(ctx, proxies); err != nil {
		return nil, err
	}
	if _, err := rig.call(""); err != nil {
		return nil, fmt.Errorf("first push: %w", err)
	}

	// No rollout active: the Manager against the xDS server alone.
	var full, eds [2][]time.Duration // [0] straight to the server, [1] through the Manager
	for i := 0; i < rolloutRounds; i++ {
		for _, m := range []int{i % 2, 1 - i%2} {
			viaManager(m == 1)
			d, err := rig.timePush(rig.fullChange, pCDS, pEDS, pRDS)
			if err != nil {
				return nil, fmt.Errorf("full push: %w", err)
			}
			full[m] = append(full[m], d)
			d, err = rig.timePush(rig.endpointChange, pEDS)
			if err != nil {
				return nil, fmt.Errorf("endpoint push: %w", err)
			}
			eds[m] = append(eds[m], d)
			slog.Info("rollout bench: no rollout active", "manager", m == 1, "full", full[m][len(full[m])-1], "eds", d)
		}
	}
	viaManager(true)
	if st := rolloutOf(mgr, id); st.Phase != rollout.Released {
		return nil, fmt.Errorf("%s is %s before any rollout, want Released", id, st.Phase)
	}

	// Rollouts of svc-10's routes.
	var start, step, release, stagedEDS []time.Duration
	var startN, stepN, releaseN []int // proxies given the candidate by the step
	exact := true                     // every step sent something to exactly those proxies
	for i := 0; i < rolloutRuns; i++ {
		d, given, sent, err := timeStep(rig, nil, change, func() []string { return rolloutOf(mgr, id).Staged })
		if err != nil {
			return nil, fmt.Errorf("rollout %d, stage 1: %w", i+1, err)
		}
		st := rolloutOf(mgr, id)
		if st.Phase != rollout.Progressing || st.Stage != 1 {
			return nil, fmt.Errorf("rollout %d: %s is %s at stage %d after the change, want Progressing at 1", i+1, id, st.Phase, st.Stage)
		}
		if st.Affected != proxies {
			return nil, fmt.Errorf("rollout %d: the change affects %d proxies, want all %d", i+1, st.Affected, proxies)
		}
		start, startN, exact = append(start, d), append(startN, len(given)), exact && sent == len(given)
		slog.Info("rollout bench: stage 1", "took", d, "given", len(given), "sent", sent)

		before := st.Staged
		d, given, sent, err = timeStep(rig, before, func() { clock.Advance(time.Minute) }, func() []string { return rolloutOf(mgr, id).Staged })
		if err != nil {
			return nil, fmt.Errorf("rollout %d, stage 2: %w", i+1, err)
		}
		if st := rolloutOf(mgr, id); st.Phase != rollout.Progressing || st.Stage != 2 {
			return nil, fmt.Errorf("rollout %d: %s is %s at stage %d after the first soak, want Progressing at 2", i+1, id, st.Phase, st.Stage)
		}
		step, stepN, exact = append(step, d), append(stepN, len(given)), exact && sent == len(given)
		slog.Info("rollout bench: stage 2", "took", d, "given", len(given), "sent", sent)

		de, err := rig.timePush(rig.endpointChange, pEDS)
		if err != nil {
			return nil, fmt.Errorf("rollout %d, endpoint push at stage 2: %w", i+1, err)
		}
		stagedEDS = append(stagedEDS, de)

		before = rolloutOf(mgr, id).Staged
		d, given, sent, err = timeStep(rig, before, func() { clock.Advance(time.Minute) }, func() []string { return rig.nodes })
		if err != nil {
			return nil, fmt.Errorf("rollout %d, release: %w", i+1, err)
		}
		if st := rolloutOf(mgr, id); st.Phase != rollout.Released {
			return nil, fmt.Errorf("rollout %d: %s is %s after the second soak, want Released", i+1, id, st.Phase)
		}
		release, releaseN, exact = append(release, d), append(releaseN, len(given)), exact && sent == len(given)
		slog.Info("rollout bench: released", "took", d, "given", len(given), "sent", sent)
	}
	_, _, peak := pilotMemory()

	cmd := "go run ./bench -only rollout"
	how := fmt.Sprintf("%d proxies, delta ADS, clients in a child process; synthetic model fed to a rollout Manager (fake clock) in front of the xDS server, no API server; 1-min load average %s at start, %s at end", proxies, load, loadAverage())
	stepRow := func(what string, ds []time.Duration, ns []int) Row {
		return Row{Figure: fmt.Sprintf("rollout: %s, to every proxy the step gives the change (%s of %d) ACKed, median of %d, range %s (%s)", what, counts(ns), proxies, len(ds), spread(ds), how),
			Value: median(ds).Seconds(), Unit: "s", Baseline: "full push to every proxy, no rollout active, same run (median)", BaselineValue: median(full[1]).Seconds(),
			Target: "< 1 s", Met: Check(median(ds) < time.Second), Command: cmd}
	}
	sentNote := "every step sent config to exactly the proxies it gave the change"
	if !exact {
		sentNote = "**some step sent config to other proxies than those it gave the change**"
	}
	return []Row{
		{Figure: fmt.Sprintf("rollout: full push (CDS+EDS+RDS) through the rollout Manager, no rollout active, change to all ACKed, median of %d, range %s (%s)", len(full[1]), spread(full[1]), how),
			Value: median(full[1]).Seconds(), Unit: "s", Baseline: fmt.Sprintf("same push straight to the xDS server, alternating in the same run, range %s", spread(full[0])), BaselineValue: median(full[0]).Seconds(),
			Target: "within 10%", Met: Check(median(full[1]) <= median(full[0])*11/10), Command: cmd},
		{Figure: fmt.Sprintf("rollout: endpoint-only push (EDS) through the rollout Manager, no rollout active, median of %d, range %s (%s)", len(eds[1]), spread(eds[1]), how),
			Value: median(eds[1]).Seconds(), Unit: "s", Baseline: fmt.Sprintf("same push straight to the xDS server, alternating in the same run, range %s", spread(eds[0])), BaselineValue: median(eds[0]).Seconds(),
			Target: "within 10%", Met: Check(median(eds[1]) <= median(eds[0])*11/10), Command: cmd},
		{Figure: fmt.Sprintf("rollout: the rollout Manager's own time per push, no rollout active, the xDS server's push left out (%d config resources read), median of %d, range %s", len(rig.world.In.VirtualServices)+len(rig.world.In.DestinationRules), len(own), spread(own)),
			Value: median(own).Seconds() * 1000, Unit: "ms", Baseline: "full push to every proxy, no rollout active, same run (median)", BaselineValue: median(full[1]).Seconds() * 1000,
			Target: "< 10% of a push", Met: Check(median(own)*10 < median(full[1])), Command: cmd},
		stepRow("stage 1 (10%) of a VirtualService change (svc-10's split), from the change", start, startN),
		stepRow("step to stage 2 (50%), from the end of the soak", step, stepN),
		stepRow("release (100%), from the end of the last soak", release, releaseN),
		{Figure: fmt.Sprintf("rollout: endpoint-only push (EDS) at stage 2 of a rollout (half the proxies staged), median of %d, range %s (%s; %s)", len(stagedEDS), spread(stagedEDS), how, sentNote),
			Value: median(stagedEDS).Seconds(), Unit: "s", Baseline: "same push through the Manager, no rollout active, same run (median)", BaselineValue: median(eds[1]).Seconds(), Command: cmd},
		{Figure: fmt.Sprintf("rollout: peak resident set (VmHWM) over the run, %d proxies, rollouts included", proxies),
			Value: MiB(peak), Unit: "MiB", Target: "< 1024 MiB", Met: Check(MiB(peak) < 1024), Command: cmd},
	}, nil
}

// timeStep times step (a change, or the fake clock moved past a soak)
// until every proxy of given() not in before has ACKed new routes, and
// returns those proxies and how many clients were sent anything new.
func timeStep(r *pilotRig, before []string, step func(), given func() []string) (time.Duration, []string, int, error) {
	if _, err := r.call("mark " + strconv.Itoa(pRDS)); err != nil {
		return 0, nil, 0, err
	}
	t0 := time.Now()
	step()
	had := map[string]bool{}
	for _, id := range before {
		had[id] = true
	}
	var now []string
	for _, id := range given() {
		if !had[id] {
			now = append(now, id)
		}
	}
	if len(now) == 0 {
		return 0, nil, 0, fmt.Errorf("the step gave the change to no proxy")
	}
	if _, err := r.call("waitids " + strings.Join(now, " ")); err != nil {
		return 0, nil, 0, err
	}
	took := time.Since(t0)
	out, err := r.call("pushed")
	if err != nil {
		return 0, nil, 0, err
	}
	sent, err := strconv.Atoi(strings.TrimPrefix(out, "done "))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("xDS clients: %q", out)
	}
	return took, now, sent, nil
}

func rolloutOf(m *rollout.Manager, id string) rollout.Status {
	for _, s := range m.Statuses() {
		if s.ID == id {
			return s
		}
	}
	return rollout.Status{}
}

// spread is the range of ds.
func spread(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if s[0] < 10*time.Millisecond {
		return fmt.Sprintf("%v–%v", s[0].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
	}
	return fmt.Sprintf("%.3f–%.3f s", s[0].Seconds(), s[len(s)-1].Seconds())
}

// counts is the distinct values of ns.
func counts(ns []int) string {
	seen := map[int]bool{}
	var out []string
	for _, n := range ns {
		if !seen[n] {
			seen[n] = true
			out = append(out, strconv.Itoa(n))
		}
	}
	return strings.Join(out, ", ")
}
