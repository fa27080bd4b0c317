package precheck

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/version"
)

func (c *Checker) kubernetesVersion(ctx context.Context) (Result, error) {
	r := Result{Name: "Kubernetes version"}
	info, err := c.Client.ServerVersion(ctx)
	if err != nil {
		return r, err
	}
	return judgeVersion(info.GitVersion), nil
}

// judgeVersion checks a cluster version string against the supported range.
func judgeVersion(gitVersion string) Result {
	r := Result{Name: "Kubernetes version"}
	supported := fmt.Sprintf("1.%d to 1.%d", MinKubeMinor, MaxKubeMinor)
	v, err := version.ParseGeneric(gitVersion)
	if err != nil {
		r.Message = fmt.Sprintf("the cluster reports version %q, which does not parse", gitVersion)
		r.Remedy = "use a cluster that reports a Kubernetes version (" + supported + ")"
		return r
	}
	switch {
	case v.Major() != 1 || v.Minor() < MinKubeMinor:
		r.Message = fmt.Sprintf("Kubernetes %s is older than the supported %s", gitVersion, supported)
		r.Remedy = fmt.Sprintf("upgrade the cluster to at least 1.%d", MinKubeMinor)
	case v.Minor() > MaxKubeMinor:
		r.Message = fmt.Sprintf("Kubernetes %s is newer than the tested %s", gitVersion, supported)
		r.Remedy = "the install may work; report problems, or use a supported cluster version"
		r.Warning = true
	default:
		r.Passed = true
		r.Message = fmt.Sprintf("Kubernetes %s is supported (%s)", gitVersion, supported)
	}
	return r
}
