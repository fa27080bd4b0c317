package analyzers

import (
	"errors"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
)

// rolloutKinds are the kinds pilot stages changes of (docs/rollout.md):
// its config resources.
func rolloutKinds() map[string]bool {
	out := map[string]bool{}
	for _, k := range model.Kinds {
		if k.CRD {
			out[k.GVK.Kind] = true
		}
	}
	return out
}

// rolloutValue checks one rollout annotation's value as pilot reads it,
// alone: what the others must say with it (stages and an interval) may
// come from the install's mesh-wide default (values.pilot.rollout), which
// analyze does not see, so pilot's log and rollout status say that part.
func rolloutValue(key string) func(string) error {
	return func(v string) error {
		ann := map[string]string{annotation.Stages: "100", annotation.Interval: "60s", key: v}
		var err error
		switch key {
		case annotation.Promote, annotation.Abort:
			_, _, err = annotation.ParseRequests(ann)
		default:
			_, err = annotation.Parse(ann)
		}
		var ae *annotation.Error
		if errors.As(err, &ae) {
			return errors.New(ae.Problem)
		}
		return err
	}
}

func init() {
	kinds := rolloutKinds()
	for _, k := range []string{annotation.Stages, annotation.Interval, annotation.Max5xxRatio, annotation.MaxLatencyIncrease, annotation.Promote, annotation.Abort} {
		knownAnnotations[k] = annotationInfo{kinds: kinds}
		annotationValues[k] = rolloutValue(k)
	}
}
