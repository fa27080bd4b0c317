// Package precheck decides whether a cluster can take a mesh install: each
// check returns a typed result with a remedy, and the command prints them.
package precheck

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// Supported Kubernetes minor versions (1.x).
const (
	MinKubeMinor = 30
	MaxKubeMinor = 37
)

// Result is the outcome of one check.
type Result struct {
	// Name is the check, e.g. "Kubernetes version".
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Warning marks a failed check that does not block the install.
	Warning bool   `json:"warning,omitempty"`
	Message string `json:"message"`
	// Remedy says what to do when the check failed.
	Remedy string `json:"remedy,omitempty"`
	// Details list the individual findings (missing permissions, conflicting objects).
	Details []string `json:"details,omitempty"`
}

// Report is the outcome of every check.
type Report struct {
	Checks []Result `json:"checks"`
	// Installable is true when no blocking check failed.
	Installable bool `json:"installable"`
}

// Mode says what the checks prepare for.
type Mode int

// The modes: a fresh install, or an upgrade over an installed revision.
const (
	ForInstall Mode = iota
	ForUpgrade
)

// Checker runs the checks for one rendering.
type Checker struct {
	Client   *kube.Client
	Manifest install.Manifest
	Mode     Mode
}

// Run runs every check. An error means the cluster could not be asked at all.
func (c *Checker) Run(ctx context.Context) (*Report, error) {
	if _, err := c.Client.ServerVersion(ctx); err != nil {
		return nil, err
	}
	checks := []func(context.Context) (Result, error){
		c.kubernetesVersion,
		c.permissions,
		c.namespace,
		c.controlPlanes,
		c.crds,
		c.gatewayAPI,
		c.webhooks,
	}
	rep := &Report{Installable: true}
	for _, check := range checks {
		r, err := check(ctx)
		if apierrors.IsForbidden(err) {
			// A caller who may not even look has failed the check; say what was refused.
			r.Passed, r.Message = false, "could not check: the caller may not read what this check needs"
			r.Details = []string{err.Error()}
			r.Remedy = "run as a user who may read the cluster's control planes, CRDs, webhooks and namespaces"
		} else if err != nil {
			return nil, fmt.Errorf("precheck %s: %w", r.Name, err)
		}
		rep.Checks = append(rep.Checks, r)
		if !r.Passed && !r.Warning {
			rep.Installable = false
		}
	}
	return rep, nil
}
