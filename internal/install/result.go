package install

import (
	"mesh.dev/mesh/internal/kube"
)

// ObjectResult is what happened to one object.
type ObjectResult struct {
	Ref    kube.Ref    `json:"object"`
	Action kube.Action `json:"action"`
}

// ComponentResult is what happened to one component.
type ComponentResult struct {
	Name    string         `json:"name"`
	Objects []ObjectResult `json:"objects"`
}

// Counts tallies the actions in the component.
func (c ComponentResult) Counts() map[kube.Action]int {
	n := map[kube.Action]int{}
	for _, o := range c.Objects {
		n[o.Action]++
	}
	return n
}

// Result is what an install or upgrade did.
type Result struct {
	Revision   string            `json:"revision"`
	DryRun     bool              `json:"dryRun,omitempty"`
	Components []ComponentResult `json:"components"`
	Pruned     []kube.Ref        `json:"pruned,omitempty"`
	// Recorded tells whether the installed-state record changed.
	Recorded kube.Action `json:"recorded,omitempty"`
}

// Changed reports whether the install changed anything in the cluster.
func (r *Result) Changed() bool {
	if len(r.Pruned) > 0 {
		return true
	}
	for _, c := range r.Components {
		for _, o := range c.Objects {
			if o.Action != kube.Unchanged {
				return true
			}
		}
	}
	return r.Recorded != "" && r.Recorded != kube.Unchanged
}

// Count returns how many objects were applied.
func (r *Result) Count() int {
	n := 0
	for _, c := range r.Components {
		n += len(c.Objects)
	}
	return n
}

// EventKind tells what an Event reports.
type EventKind string

// The kinds of progress events an action emits.
const (
	ComponentStarted EventKind = "started"
	ObjectApplied    EventKind = "applied"
	ComponentWaiting EventKind = "waiting"
	ComponentDone    EventKind = "done"
	ComponentFailed  EventKind = "failed"
	PruneDone        EventKind = "pruned"
)

// Event is one step of progress, for a command to show.
type Event struct {
	Kind      EventKind
	Component string
	Object    *ObjectResult
	Result    *ComponentResult
	Pruned    []kube.Ref
	// Waiting says what a ComponentWaiting event waits for.
	Waiting string
	Err     error
}
