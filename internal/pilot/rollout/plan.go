package rollout

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// Plan is what the xDS server serves while changes are staged, beside the
// base snapshot (the released versions): the candidates in flight.
type Plan struct {
	Candidates []Candidate
}

// Candidate is one staged change: the resource's applied version, for the
// share of the proxies it affects that its current stage gives it.
type Candidate struct {
	ID              string // Kind/namespace/name
	Kind            *model.Kind
	Namespace, Name string
	Object          metav1.Object
	Percent         int
	// Revision tells this candidate from an earlier one of the same
	// resource (a change that superseded it), so a late NACK of the
	// earlier one rolls nothing back.
	Revision uint64
}

// Counts is what a push made of one candidate: how many connected
// proxies it affects (their config differs between the released and the
// candidate version) and which of them were given it.
type Counts struct {
	Affected int
	Staged   []string // node ids, sorted
	// Members are the affected proxies' node ids, sorted (the staged
	// ones among them).
	Members []string
}

// Rejection is a staged proxy refusing a candidate: a NACK, or config
// pilot generated from it that fails validation and so cannot be sent.
type Rejection struct {
	ID       string // the candidate's resource
	Revision uint64
	Proxy    string // node id
	Type     string // xDS type (CDS, LDS, ...)
	Reason   string
	// Generation is the candidate's metadata.generation, set when a
	// replica that does not lead hands the rejection to the leader.
	Generation int64 `json:",omitempty"`
}
