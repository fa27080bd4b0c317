// Package spec holds the install API (install.mesh.io/v1alpha1 MeshOperator)
// and turns a profile, -f overlays and --set flags into one MeshOperator.
package spec

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion and Kind identify a MeshOperator document.
const (
	APIVersion = "install.mesh.io/v1alpha1"
	Kind       = "MeshOperator"
)

// Defaults used when neither the profile nor an overlay says otherwise.
const (
	DefaultProfile   = "default"
	DefaultHub       = "mesh.dev"
	DefaultNamespace = "mesh-system"
	// DefaultRevision is the value of the mesh.io/rev label when no revision is set.
	DefaultRevision = "default"
)

// MeshOperator is the whole description of one mesh installation.
type MeshOperator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MeshOperatorSpec `json:"spec"`
}

// MeshOperatorSpec is what --set paths address (`--set profile=demo`).
type MeshOperatorSpec struct {
	// Profile names the built-in profile the rest is layered on.
	Profile string `json:"profile,omitempty"`
	// Hub is the image registry, e.g. mesh.dev; images are <hub>/mesh-pilot:<tag>.
	Hub string `json:"hub,omitempty"`
	// Tag is the image tag; it defaults to the mesh version.
	Tag string `json:"tag,omitempty"`
	// Revision names a control plane that can run beside others (canary upgrades).
	Revision string `json:"revision,omitempty"`
	// Namespace is where the control plane and gateways run.
	Namespace string `json:"namespace,omitempty"`
	// Components switches the parts of the mesh on and off and sizes them.
	Components Components `json:"components"`
	// MeshConfig is the mesh-wide proxy and control-plane configuration (Istio's MeshConfig fields).
	MeshConfig map[string]any `json:"meshConfig,omitempty"`
	// Values are passed to the Helm charts below what the fields above derive.
	Values map[string]any `json:"values,omitempty"`
}

// Components lists the installable parts of the mesh.
type Components struct {
	Base            *ComponentSpec `json:"base,omitempty"`
	Pilot           *ComponentSpec `json:"pilot,omitempty"`
	IngressGateways []GatewaySpec  `json:"ingressGateways,omitempty"`
	EgressGateways  []GatewaySpec  `json:"egressGateways,omitempty"`
}

// ComponentSpec switches a component on and sizes its workload.
type ComponentSpec struct {
	Enabled *bool           `json:"enabled,omitempty"`
	K8s     *KubernetesSpec `json:"k8s,omitempty"`
}

// IsEnabled reports whether the component is switched on (nil means off).
func (c *ComponentSpec) IsEnabled() bool { return c != nil && c.Enabled != nil && *c.Enabled }

// GatewaySpec is one ingress or egress gateway.
type GatewaySpec struct {
	// Name names the gateway's Deployment and Service and is its list key (`[name:x]`).
	Name string `json:"name"`
	// Namespace defaults to the mesh namespace.
	Namespace string            `json:"namespace,omitempty"`
	Enabled   *bool             `json:"enabled,omitempty"`
	Label     map[string]string `json:"label,omitempty"`
	K8s       *KubernetesSpec   `json:"k8s,omitempty"`
}

// IsEnabled reports whether the gateway is switched on (nil means off).
func (g GatewaySpec) IsEnabled() bool { return g.Enabled != nil && *g.Enabled }

// KubernetesSpec sizes and places a component's workload.
type KubernetesSpec struct {
	ReplicaCount   *int              `json:"replicaCount,omitempty"`
	Resources      *Resources        `json:"resources,omitempty"`
	HPASpec        *HPASpec          `json:"hpaSpec,omitempty"`
	Env            []EnvVar          `json:"env,omitempty"`
	NodeSelector   map[string]string `json:"nodeSelector,omitempty"`
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	Service        *ServiceSpec      `json:"service,omitempty"`
}

// Resources are container resource requests and limits (quantities as strings).
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// HPASpec configures the HorizontalPodAutoscaler.
type HPASpec struct {
	MinReplicas                    *int `json:"minReplicas,omitempty"`
	MaxReplicas                    *int `json:"maxReplicas,omitempty"`
	TargetCPUUtilizationPercentage *int `json:"targetCPUUtilizationPercentage,omitempty"`
}

// EnvVar is one environment variable of the component's container.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ServiceSpec shapes a gateway's Service.
type ServiceSpec struct {
	Type  string        `json:"type,omitempty"`
	Ports []ServicePort `json:"ports,omitempty"`
}

// ServicePort is one port of a gateway's Service.
type ServicePort struct {
	Name       string `json:"name"`
	Port       int    `json:"port"`
	TargetPort int    `json:"targetPort,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
}

// RevisionLabel returns the value of the mesh.io/rev label for this installation.
func (m *MeshOperator) RevisionLabel() string {
	if m.Spec.Revision == "" {
		return DefaultRevision
	}
	return m.Spec.Revision
}
