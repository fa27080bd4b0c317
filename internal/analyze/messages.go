package analyze

// The message types analyzers report. Codes and meanings follow Istio's
// (IST....); MSH.... are mesh's own.
var (
	InternalError = &MessageType{"IST0001", "InternalError", Error,
		"An analyzer failed: a bug in mesh, not in the configuration. The other analyzers' findings stand."}
	Deprecated = &MessageType{"IST0002", "Deprecated", Warning,
		"A field, value or annotation is deprecated and may be removed in a future release."}
	ReferencedResourceNotFound = &MessageType{"IST0101", "ReferencedResourceNotFound", Error,
		"A resource refers to another (a host, subset, gateway, namespace) that does not exist."}
	NamespaceNotInjected = &MessageType{"IST0102", "NamespaceNotInjected", Info,
		"A namespace is not labelled for proxy injection, so its new pods join the mesh without a proxy."}
	PodMissingProxy = &MessageType{"IST0103", "PodMissingProxy", Warning,
		"A pod that should have a proxy has none, usually because it started before injection was enabled."}
	SchemaValidationError = &MessageType{"IST0106", "SchemaValidationError", Error,
		"A resource does not pass schema or semantic validation; the control plane would reject it."}
	MisplacedAnnotation = &MessageType{"IST0107", "MisplacedAnnotation", Warning,
		"A known annotation is set on a kind of resource it has no effect on."}
	UnknownAnnotation = &MessageType{"IST0108", "UnknownAnnotation", Warning,
		"An annotation in a mesh or Istio domain is not one the mesh knows, often a typo."}
	ConflictingMeshGatewayVirtualServiceHosts = &MessageType{"IST0109", "ConflictingMeshGatewayVirtualServiceHosts", Error,
		"Several VirtualServices bound to the mesh gateway claim the same host; only one of them takes effect."}
	ConflictingSidecarWorkloadSelectors = &MessageType{"IST0110", "ConflictingSidecarWorkloadSelectors", Error,
		"Several Sidecar resources select the same workload; which one applies is undefined."}
	MultipleSidecarsWithoutWorkloadSelectors = &MessageType{"IST0111", "MultipleSidecarsWithoutWorkloadSelectors", Error,
		"A namespace has more than one Sidecar without a workload selector; which one applies is undefined."}
	MTLSPolicyConflict = &MessageType{"IST0113", "MTLSPolicyConflict", Error,
		"A DestinationRule and a PeerAuthentication disagree about mTLS for a host, so its clients and servers cannot talk."}
	VirtualServiceDestinationPortSelectorRequired = &MessageType{"IST0112", "VirtualServiceDestinationPortSelectorRequired", Error,
		"A VirtualService routes (or mirrors) to a service with several ports without saying which port."}
	DeploymentAssociatedToMultipleServices = &MessageType{"IST0116", "DeploymentAssociatedToMultipleServices", Warning,
		"Services selecting the same workload use one port number with different protocols."}
	PortNameIsNotUnderNamingConvention = &MessageType{"IST0118", "PortNameIsNotUnderNamingConvention", Info,
		"A Service port name does not start with a protocol (http, grpc, tcp...) and sets no appProtocol, so its traffic is treated as opaque TCP."}
	JwtFailureDueToInvalidServicePortPrefix = &MessageType{"IST0119", "JwtFailureDueToInvalidServicePortPrefix", Warning,
		"A RequestAuthentication selects workloads behind a Service port that is not HTTP, where JWTs cannot be checked."}
	NamespaceMultipleInjectionLabels = &MessageType{"IST0123", "NamespaceMultipleInjectionLabels", Warning,
		"A namespace has both an injection label and a revision label; which one decides injection is undefined."}
	InvalidAnnotation = &MessageType{"IST0125", "InvalidAnnotation", Warning,
		"A known annotation has a value the mesh cannot use."}
	UnknownMeshNetworksServiceRegistry = &MessageType{"IST0126", "UnknownMeshNetworksServiceRegistry", Error,
		"A MeshNetworks endpoint names a service registry the mesh does not know."}
	NoMatchingWorkloadsFound = &MessageType{"IST0127", "NoMatchingWorkloadsFound", Warning,
		"A workload selector matches no workload, so the resource has no effect."}
	NoServerCertificateVerificationDestinationLevel = &MessageType{"IST0128", "NoServerCertificateVerificationDestinationLevel", Warning,
		"A DestinationRule originates TLS without caCertificates, so the server's certificate is not verified."}
	NoServerCertificateVerificationPortLevel = &MessageType{"IST0129", "NoServerCertificateVerificationPortLevel", Warning,
		"A DestinationRule originates TLS on a port without caCertificates, so the server's certificate is not verified."}
	VirtualServiceUnreachableRule = &MessageType{"IST0130", "VirtualServiceUnreachableRule", Warning,
		"A VirtualService rule can never be used because earlier rules already match all of its traffic."}
	VirtualServiceIneffectiveMatch = &MessageType{"IST0131", "VirtualServiceIneffectiveMatch", Info,
		"A match condition repeats one of an earlier rule, so it never selects this rule."}
	VirtualServiceHostNotFoundInGateway = &MessageType{"IST0132", "VirtualServiceHostNotFoundInGateway", Warning,
		"A VirtualService host is not served by any server of the gateways it is bound to."}
	SchemaWarning = &MessageType{"IST0133", "SchemaWarning", Warning,
		"A resource passes validation but has a setting that is likely a mistake."}
	ServiceEntryAddressesRequired = &MessageType{"IST0134", "ServiceEntryAddressesRequired", Warning,
		"A ServiceEntry with a TCP-like port has no addresses, so its traffic cannot be told apart from other TCP traffic on that port."}
	DeprecatedAnnotation = &MessageType{"IST0135", "DeprecatedAnnotation", Info,
		"A resource uses a deprecated annotation, which may stop working in a future release."}
	DeploymentConflictingPorts = &MessageType{"IST0137", "DeploymentConflictingPorts", Warning,
		"Services selecting the same workload send one target port to different service ports."}
	GatewayDuplicateCertificate = &MessageType{"IST0138", "GatewayDuplicateCertificate", Warning,
		"Several Gateways on the same workload use one certificate; HTTP/2 clients reusing a connection across their hosts may get 404s."}
	InvalidWebhook = &MessageType{"IST0139", "InvalidWebhook", Error,
		"A mesh webhook calls a control-plane Service (or port) that does not exist, so injection or validation fails, or injection webhooks overlap, so pods are injected twice."}
	IngressRouteRulesNotAffected = &MessageType{"IST0140", "IngressRouteRulesNotAffected", Warning,
		"A mesh VirtualService's subset routes do not apply to requests through an ingress gateway, whose own route sends the host without a subset."}
	InvalidApplicationUID = &MessageType{"IST0144", "InvalidApplicationUID", Warning,
		"An application container runs as user ID 1337, which is reserved for the proxy: its traffic bypasses the proxy."}
	ConflictingGateways = &MessageType{"IST0145", "ConflictingGateways", Error,
		"Gateways with the same selector serve the same port and host; only one of them takes effect."}
	ImageAutoWithoutInjectionWarning = &MessageType{"IST0146", "ImageAutoWithoutInjectionWarning", Warning,
		"A workload has a container with image: auto (filled in by injection) but is not targeted for injection."}
	ImageAutoWithoutInjectionError = &MessageType{"IST0147", "ImageAutoWithoutInjectionError", Error,
		"A pod has a container with image: auto (filled in by injection) but was not injected, so the container cannot start."}
	JwtClaimBasedRoutingWithoutRequestAuthN = &MessageType{"IST0149", "JwtClaimBasedRoutingWithoutRequestAuthN", Error,
		"A VirtualService routes on JWT claims at a gateway whose pods no RequestAuthentication selects, so the claims are never there."}
	ExternalNameServiceTypeInvalidPortName = &MessageType{"IST0150", "ExternalNameServiceTypeInvalidPortName", Warning,
		"An ExternalName Service port is TCP or names no protocol, so proxies may not forward its traffic as expected."}
	InvalidTelemetryProvider = &MessageType{"IST0157", "InvalidTelemetryProvider", Warning,
		"A Telemetry entry names no provider and the mesh has no default provider for it, so it is ignored."}
	PodsIstioProxyImageMismatchInNamespace = &MessageType{"IST0158", "PodsIstioProxyImageMismatchInNamespace", Warning,
		"Pods in a namespace run a proxy image other than the one the injector now injects, usually because they started before an upgrade."}
	ConflictingTelemetryWorkloadSelectors = &MessageType{"IST0159", "ConflictingTelemetryWorkloadSelectors", Error,
		"Several Telemetry resources select the same workload; which one applies is undefined."}
	MultipleTelemetriesWithoutWorkloadSelectors = &MessageType{"IST0160", "MultipleTelemetriesWithoutWorkloadSelectors", Error,
		"A namespace has more than one Telemetry without a workload selector; which one applies is undefined."}
	InvalidGatewayCredential = &MessageType{"IST0161", "InvalidGatewayCredential", Error,
		"A Gateway's credentialName names no Secret in the gateway workload's namespace, so the server has no certificate."}
	GatewayPortNotDefinedOnService = &MessageType{"IST0162", "GatewayPortNotDefinedOnService", Warning,
		"A Gateway listens on a port that the gateway workload's Service does not expose."}
	ReferencedInternalGateway = &MessageType{"IST0165", "ReferencedInternalGateway", Warning,
		"A VirtualService names a Gateway that Istio generates internally from a Kubernetes Gateway API Gateway; such names are an implementation detail."}
	IneffectiveSelector = &MessageType{"IST0166", "IneffectiveSelector", Warning,
		"A policy's workload selector matches the pods of a Kubernetes Gateway API Gateway, where a selector has no effect; targetRefs must be used."}
	UnsupportedGatewayAPIVersion = &MessageType{"IST0156", "UnsupportedGatewayAPIVersion", Error,
		"A Kubernetes Gateway API CRD of a kind pilot reads does not serve the version pilot reads (v1), so that kind is not read at all."}
	NegativeConditionStatus = &MessageType{"IST0171", "NegativeConditionStatus", Warning,
		"A Kubernetes Gateway API object has (or, from the configuration, will be given) a status condition that shows a problem: not accepted, references not resolved, a listener conflict."}
	GatewayAPICRDVersionBelowMinimum = &MessageType{"IST0176", "GatewayAPICRDVersionBelowMinimum", Warning,
		"A Kubernetes Gateway API CRD is an older release than the one mesh is built for: the API server drops the fields that release lacks."}
	DestinationRuleSubsetNotSelectPods = &MessageType{"IST0173", "DestinationRuleSubsetNotSelectPods", Error,
		"A DestinationRule subset that traffic is routed to selects no pods."}
	UnknownDestinationRuleHost = &MessageType{"IST0174", "UnknownDestinationRuleHost", Warning,
		"A DestinationRule's host is not a known Service or ServiceEntry host."}
	ConflictingServiceEntryProtocol = &MessageType{"IST0177", "ConflictingServiceEntryProtocol", Warning,
		"ServiceEntries visible in one namespace give the same host and port different protocols; only one protocol can be used."}
	RetryAmplification = &MessageType{"MSH0001", "RetryAmplification", Warning,
		"Retries on several hops of a call chain (or in the app and its proxy) multiply; one failing request can become many."}
	SidecarScopeMissing = &MessageType{"MSH0002", "SidecarScopeMissing", Info,
		"A namespace's proxies receive configuration for every service in the mesh because no Sidecar narrows it."}
	NotEnforced = &MessageType{"MSH0003", "NotEnforced", Warning,
		"A setting this mesh does not carry out yet: traffic behaves as if it were absent, or, for an ALLOW rule, as if the rule allowed nobody."}
	KindNotSupported = &MessageType{"MSH0004", "KindNotSupported", Warning,
		"A resource of a kind this mesh does not read at all (EnvoyFilter, WasmPlugin, WorkloadGroup, ProxyConfig; the Gateway API's TCPRoute, TLSRoute, UDPRoute, ListenerSet, BackendTLSPolicy): it has no effect."}
	InvalidClientCredential = &MessageType{"MSH0005", "InvalidClientCredential", Error,
		"A DestinationRule's tls.credentialName names no usable Secret in the namespace of a gateway that uses it, so the gateway's TLS origination fails."}
	FallbackVetoed = &MessageType{"MSH0006", "FallbackVetoed", Warning,
		"A workload opts into sidecar fallback (mesh.io/fallback: direct), but a security policy vetoes it: when its proxy is down its traffic fails closed."}
	FallbackDestinationsCaptured = &MessageType{"MSH0007", "FallbackDestinationsCaptured", Info,
		"A workload opts into sidecar fallback (mesh.io/fallback: direct) and may fall back, but some destinations require mTLS: while its proxy is down its connections to them stay captured and fail, the others go direct."}
)

// AllMessageTypes lists every message type, ordered by code.
func AllMessageTypes() []*MessageType {
	return []*MessageType{InternalError, Deprecated, ReferencedResourceNotFound, NamespaceNotInjected, PodMissingProxy,
		SchemaValidationError, MisplacedAnnotation, UnknownAnnotation, ConflictingMeshGatewayVirtualServiceHosts,
		ConflictingSidecarWorkloadSelectors, MultipleSidecarsWithoutWorkloadSelectors,
		VirtualServiceDestinationPortSelectorRequired, MTLSPolicyConflict, DeploymentAssociatedToMultipleServices,
		PortNameIsNotUnderNamingConvention, JwtFailureDueToInvalidServicePortPrefix, NamespaceMultipleInjectionLabels, InvalidAnnotation,
		UnknownMeshNetworksServiceRegistry, NoMatchingWorkloadsFound,
		NoServerCertificateVerificationDestinationLevel, NoServerCertificateVerificationPortLevel,
		VirtualServiceUnreachableRule, VirtualServiceIneffectiveMatch, VirtualServiceHostNotFoundInGateway,
		SchemaWarning, ServiceEntryAddressesRequired, DeprecatedAnnotation, DeploymentConflictingPorts,
		GatewayDuplicateCertificate, InvalidWebhook, IngressRouteRulesNotAffected, InvalidApplicationUID, ConflictingGateways, ImageAutoWithoutInjectionWarning, ImageAutoWithoutInjectionError,
		JwtClaimBasedRoutingWithoutRequestAuthN, ExternalNameServiceTypeInvalidPortName, UnsupportedGatewayAPIVersion, InvalidTelemetryProvider, PodsIstioProxyImageMismatchInNamespace,
		ConflictingTelemetryWorkloadSelectors, MultipleTelemetriesWithoutWorkloadSelectors, InvalidGatewayCredential, GatewayPortNotDefinedOnService,
		ReferencedInternalGateway, IneffectiveSelector, NegativeConditionStatus,
		DestinationRuleSubsetNotSelectPods, UnknownDestinationRuleHost, GatewayAPICRDVersionBelowMinimum, ConflictingServiceEntryProtocol,
		RetryAmplification, SidecarScopeMissing, NotEnforced, KindNotSupported, InvalidClientCredential, FallbackVetoed, FallbackDestinationsCaptured}
}
