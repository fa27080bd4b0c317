// Package annotation is the contract of staged releases on a mesh config
// resource (docs/rollout.md): the rollout.mesh.io/ annotations, what they
// ask of a change (Spec), the promote and abort requests `mesh rollout`
// writes, and the mesh-wide default the install API may set. It is a leaf
// package so the install API can check a default without pilot's model;
// internal/pilot/rollout carries the contract out.
package annotation

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The annotations of the contract, on the resource as applied.
const (
	Prefix             = "rollout.mesh.io/"
	Stages             = Prefix + "stages"
	Interval           = Prefix + "interval"
	Max5xxRatio        = Prefix + "max-5xx-ratio"
	MaxLatencyIncrease = Prefix + "max-latency-increase"

	// Promote and Abort are not part of the contract
	// but requests `mesh rollout promote` and `abort` write on the
	// resource (under the user's RBAC); see Request.
	Promote = Prefix + "promote"
	Abort   = Prefix + "abort"
)

var known = map[string]bool{
	Stages: true, Interval: true, Max5xxRatio: true, MaxLatencyIncrease: true,
}

// Spec is what a resource's annotations ask of a change to it.
type Spec struct {
	// Stages are the percentages of the affected proxies given the
	// candidate, increasing, the last 100.
	Stages []int
	// Interval is how long each stage soaks before the next.
	Interval time.Duration
	// Max5xxRatio and MaxLatencyIncrease are the health gates, set when
	// Has5xxGate and HasLatencyGate say so (docs/rollout.md).
	Max5xxRatio                float64
	MaxLatencyIncrease         float64
	Has5xxGate, HasLatencyGate bool
}

// Gated reports whether a stage under s is judged by its traffic.
func (s *Spec) Gated() bool { return s != nil && (s.Has5xxGate || s.HasLatencyGate) }

// Staged reports whether a change under s is released in stages (a
// single stage of 100 is no staging).
func (s *Spec) Staged() bool { return s != nil && len(s.Stages) > 1 }

// Error is a rollout annotation pilot cannot carry out, naming the
// annotation, its value and what to write instead.
type Error struct {
	Annotation, Value, Problem string
}

func (e *Error) Error() string {
	return fmt.Sprintf("annotation %s: %q: %s", e.Annotation, e.Value, e.Problem)
}

// Parse reads the rollout annotations of a resource. It returns nil, nil
// when the resource has none (a change goes out at once). Any annotation
// under rollout.mesh.io/ that is unknown or malformed is an error: a typo
// must not release a change to everyone at once.
func Parse(annotations map[string]string) (*Spec, error) {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, Prefix) && k != Promote && k != Abort {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return nil, &Error{Annotation: k, Value: annotations[k], Problem: "unknown rollout annotation; the known ones are " +
				Stages + ", " + Interval + ", " + Max5xxRatio + " and " + MaxLatencyIncrease +
				" (and " + Promote + " and " + Abort + ", which mesh rollout writes)"}
		}
	}
	stages, ok := annotations[Stages]
	if !ok {
		return nil, &Error{Annotation: keys[0], Value: annotations[keys[0]], Problem: "set without " + Stages + `, which says how the change is staged (e.g. "10,50,100")`}
	}
	s := &Spec{}
	var err error
	if s.Stages, err = parseStages(stages); err != nil {
		return nil, err
	}
	if v, ok := annotations[Interval]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return nil, &Error{Annotation: Interval, Value: v, Problem: `want a positive duration such as "60s" or "5m"`}
		}
		s.Interval = d
	} else if len(s.Stages) > 1 {
		return nil, &Error{Annotation: Interval, Value: "", Problem: "missing: with more than one stage, say how long each soaks (e.g. \"60s\")"}
	}
	if v, ok := annotations[Max5xxRatio]; ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1 {
			return nil, &Error{Annotation: Max5xxRatio, Value: v, Problem: `want a ratio between 0 and 1 such as "0.02"`}
		}
		s.Max5xxRatio, s.Has5xxGate = f, true
	}
	if v, ok := annotations[MaxLatencyIncrease]; ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 1 {
			return nil, &Error{Annotation: MaxLatencyIncrease, Value: v, Problem: `want a factor of at least 1 such as "1.5" (the candidate's p90 latency over the released version's)`}
		}
		s.MaxLatencyIncrease, s.HasLatencyGate = f, true
	}
	return s, nil
}

func parseStages(v string) ([]int, error) {
	var out []int
	for i, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "%"))
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100 {
			return nil, &Error{Annotation: Stages, Value: v, Problem: fmt.Sprintf("stage %d (%q) is not a whole percentage from 1 to 100", i+1, f)}
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, &Error{Annotation: Stages, Value: v, Problem: fmt.Sprintf("stage %d (%d%%) does not grow on stage %d (%d%%); stages must increase", i+1, n, i, out[len(out)-1])}
		}
		out = append(out, n)
	}
	if out[len(out)-1] != 100 {
		return nil, &Error{Annotation: Stages, Value: v, Problem: "the last stage must be 100, where the change is released to every proxy it affects"}
	}
	return out, nil
}

// Request is a `mesh rollout promote` or `abort` written on a resource: it
// names the generation of the candidate it is for (metadata.generation,
// which only a change of the spec moves), so a request made before a newer
// change does nothing to that change's rollout.
//
//	rollout.mesh.io/promote: "4/1"    generation 4: move on from stage 1 to stage 2 at least
//	rollout.mesh.io/promote: "4/all"  generation 4: release to every proxy now
//	rollout.mesh.io/abort: "4"        generation 4: roll back now
//
// A request is idempotent: a promote from stage 1 does nothing to a
// rollout already at stage 2, so several pilot replicas, or the command
// run twice, never skip more than was asked.
type Request struct {
	Generation int64
	Stage      int  // promote: the 1-based stage to move on from
	All        bool // promote: release now
}

// PromoteValue is the promote annotation's value for a request.
func PromoteValue(gen int64, stage int, all bool) string {
	if all {
		return fmt.Sprintf("%d/all", gen)
	}
	return fmt.Sprintf("%d/%d", gen, stage)
}

// AbortValue is the abort annotation's value for a request.
func AbortValue(gen int64) string { return strconv.FormatInt(gen, 10) }

// ParseRequests reads the promote and abort requests on a resource (nil
// when absent). A malformed one is an error naming it; it is not carried
// out and does not hold the change.
func ParseRequests(annotations map[string]string) (promote, abort *Request, err error) {
	if v, ok := annotations[Promote]; ok {
		gen, stage, found := strings.Cut(strings.TrimSpace(v), "/")
		r := &Request{}
		var e1, e2 error
		r.Generation, e1 = strconv.ParseInt(gen, 10, 64)
		if stage == "all" {
			r.All = true
		} else {
			r.Stage, e2 = strconv.Atoi(stage)
		}
		if !found || e1 != nil || e2 != nil || r.Generation < 0 || (!r.All && r.Stage < 1) {
			return nil, nil, &Error{Annotation: Promote, Value: v, Problem: `want GENERATION/STAGE or GENERATION/all, e.g. "4/1" (written by mesh rollout promote)`}
		}
		promote = r
	}
	if v, ok := annotations[Abort]; ok {
		gen, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || gen < 0 {
			return promote, nil, &Error{Annotation: Abort, Value: v, Problem: `want the GENERATION of the candidate to roll back, e.g. "4" (written by mesh rollout abort)`}
		}
		abort = &Request{Generation: gen}
	}
	return promote, abort, nil
}

// Default is the mesh-wide default of the contract, set in the install
// API (values.pilot.rollout) and handed to pilot as flags: the rollout
// annotations a config resource is read with where it does not set them
// itself. Empty fields are unset; the zero Default stages nothing, so a
// change goes out at once unless its resource asks otherwise.
type Default struct {
	Stages, Interval, Max5xxRatio, MaxLatencyIncrease string
}

// IsZero reports whether d sets nothing.
func (d Default) IsZero() bool { return d == Default{} }

// Annotations returns the annotations d stands for.
func (d Default) Annotations() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{Stages: d.Stages, Interval: d.Interval, Max5xxRatio: d.Max5xxRatio, MaxLatencyIncrease: d.MaxLatencyIncrease} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Check reads d as a resource carrying only d's annotations would be
// read. Its error names each annotation by names (annotation → the
// field or flag that sets it), so a bad default is reported where it was
// written.
func (d Default) Check(names map[string]string) error {
	if d.IsZero() {
		return nil
	}
	_, err := Parse(d.Annotations())
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	name := func(s string) string {
		for a, n := range names {
			s = strings.ReplaceAll(s, a, n)
		}
		return s
	}
	return fmt.Errorf("%s: %q: %s", name(e.Annotation), e.Value, name(e.Problem))
}

// Under returns own (a resource's annotations) with each of d's
// annotations it does not set itself: a resource's own annotation wins,
// key by key. own is not modified.
func (d Default) Under(own map[string]string) map[string]string {
	if d.IsZero() {
		return own
	}
	out := make(map[string]string, len(own)+4)
	for k, v := range d.Annotations() {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}
