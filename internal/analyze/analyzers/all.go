// Package analyzers holds mesh analyze's analyzers, one per file.
package analyzers

import (
	"mesh.dev/mesh/internal/analyze"
)

// All returns every analyzer, in the order they run.
func All() []analyze.Analyzer {
	return []analyze.Analyzer{
		&Schema{}, &References{}, &MeshGatewayConflicts{}, &VirtualServiceRules{},
		&GatewayHosts{}, &PortSelector{}, &SubsetPods{}, &DestinationRuleHosts{},
		&Injection{}, &PortNames{}, &ServicePorts{}, &Sidecars{}, &Gateways{},
		&ServiceEntryAddresses{}, &WorkloadSelectors{}, &Annotations{},
		&MeshNetworks{}, &MTLSConflicts{}, &ServerVerification{}, &InjectionLabels{}, &ImageAuto{},
		&ExternalNamePorts{}, &MeshConfigDeprecations{}, &GatewayCredentials{}, &UnsupportedKinds{}, &Telemetries{}, &ApplicationUID{}, &JWT{},
		&Webhooks{}, &IngressSubsets{}, &InternalGateways{}, &IneffectiveSelectors{}, &ServiceEntryProtocols{}, &ProxyImages{}, &GatewaySelectors{},
		&GatewayAPIReferences{}, &GatewayAPIConditions{}, &GatewayAPICRDs{},
		&RetryAmplification{}, &SidecarScope{}, &MetaRoutes{}, &NotEnforced{}, &FallbackVetoes{},
	}
}

// systemNamespaces are left alone by the workload analyzers: they hold the
// cluster's and the mesh's own machinery.
var systemNamespaces = map[string]bool{
	"kube-system": true, "kube-public": true, "kube-node-lease": true, "local-path-storage": true,
	"mesh-system": true, "istio-system": true,
}
