package inject

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// GatewayPodSpec is the pod of a gateway proxy, as Istio's "gateway"
// injection template makes it for an automated Gateway API deployment: one
// mesh-proxy container, a router node fed by pilot, binding the listener
// ports itself (ports below 1024 too: the pod allows unprivileged ports, so
// the proxy runs as 1337 with no capabilities), with the same token and
// root-certificate volumes a sidecar gets. It is the pod of the gateways
// chart's Deployment, with the addresses from the injector values.
func GatewayPodSpec(v Values, serviceAccount string, ports []corev1.ContainerPort) corev1.PodSpec {
	uid := int64(ProxyUID)
	yes, no := true, false
	args := []string{"--xds-address", v.DiscoveryAddress, "--log-level", v.LogLevel, "--prometheus-address", "0.0.0.0:15090",
		// The node identity of a gateway: Istio's router~IP~pod.namespace~namespace.svc.cluster.local.
		"--node-id", "router~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc.cluster.local"}
	if v.ComponentLogLevel != "" {
		args = append(args, "--component-log-level", v.ComponentLogLevel)
	}
	if v.CAAddress != "" {
		args = append(args, "--ca-address", v.CAAddress,
			"--ca-root-cert", rootMountPath+"/"+rootCertKey,
			"--sa-token", tokenMountPath+"/"+tokenPath,
			"--xds-mtls")
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	cports := append([]corev1.ContainerPort(nil), ports...)
	cports = append(cports,
		corev1.ContainerPort{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "status-port", ContainerPort: 15021, Protocol: corev1.ProtocolTCP})
	expiry := int64(43200)
	return corev1.PodSpec{
		ServiceAccountName: serviceAccount,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: &yes,
			Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
		},
		Containers: []corev1.Container{{
			Name:            ProxyContainer,
			Image:           v.ProxyImage,
			ImagePullPolicy: v.ImagePullPolicy,
			Args:            args,
			Env: []corev1.EnvVar{
				fieldEnv("POD_IP", "status.podIP"),
				fieldEnv("POD_NAME", "metadata.name"),
				fieldEnv("POD_NAMESPACE", "metadata.namespace"),
				fieldEnv("INSTANCE_IP", "status.podIP"),
				fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
			},
			Ports: cports,
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(15021)}},
				PeriodSeconds:    2,
				FailureThreshold: 30,
			},
			Resources: v.Resources,
			SecurityContext: &corev1.SecurityContext{
				ReadOnlyRootFilesystem:   &yes,
				AllowPrivilegeEscalation: &no,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			VolumeMounts: []corev1.VolumeMount{
				{Name: tokenVolume, MountPath: tokenMountPath, ReadOnly: true},
				{Name: rootVolume, MountPath: rootMountPath, ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: TokenAudience, ExpirationSeconds: &expiry, Path: tokenPath,
				}}},
			}}},
			{Name: rootVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: rootVolume},
			}}},
		},
	}
}
