package inject

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The proxy environment that carries Istio's node metadata, as Istio's
// injector sets it: ISTIO_META_<KEY> for a string key, ISTIO_METAJSON_<KEY>
// for a JSON value. mesh-proxy reads them (peermeta.FromEnv) and tells its
// peers, so both ends of a request label their metrics with both workloads.
const (
	envMetaWorkloadName = "ISTIO_META_WORKLOAD_NAME"
	envMetaOwner        = "ISTIO_META_OWNER"
	envMetaLabels       = "ISTIO_METAJSON_LABELS"
	envMetaClusterID    = "ISTIO_META_CLUSTER_ID"
)

// clusterID is the cluster's name in metric labels (source_cluster,
// destination_cluster): Istio's default for a single cluster.
const clusterID = "Kubernetes"

// MetadataEnv is the node metadata environment of pod's proxy: its
// workload name and owner (the Deployment behind a ReplicaSet, else the
// controller, else the pod) and its labels with Istio's canonical service
// labels filled in.
func MetadataEnv(pod *corev1.Pod) []corev1.EnvVar {
	kind, name := workloadOf(pod)
	lbls := map[string]string{}
	for k, v := range pod.Labels {
		lbls[k] = v
	}
	if lbls["service.istio.io/canonical-name"] == "" {
		lbls["service.istio.io/canonical-name"] = canonicalName(pod)
	}
	if lbls["service.istio.io/canonical-revision"] == "" {
		rev := "latest"
		for _, k := range []string{"app.kubernetes.io/version", "version"} {
			if v := pod.Labels[k]; v != "" {
				rev = v
				break
			}
		}
		lbls["service.istio.io/canonical-revision"] = rev
	}
	js, _ := json.Marshal(lbls)
	env := []corev1.EnvVar{{Name: envMetaLabels, Value: string(js)}, {Name: envMetaClusterID, Value: clusterID}}
	if name == "" {
		// A pod template (kube-inject of a Deployment): the proxy derives the
		// workload from its pod's name at start.
		return env
	}
	env = append(env, corev1.EnvVar{Name: envMetaWorkloadName, Value: name})
	if kind != "" {
		group := "apps/v1"
		if kind == "jobs" || kind == "cronjobs" {
			group = "batch/v1"
		}
		env = append(env, corev1.EnvVar{Name: envMetaOwner, Value: "kubernetes://apis/" + group + "/namespaces/" + pod.Namespace + "/" + kind + "/" + name})
	}
	return env
}

// workloadOf is the pod's workload: a ReplicaSet's Deployment (the
// ReplicaSet's name less its pod-template-hash), another controller, or the
// pod itself (kind "").
func workloadOf(pod *corev1.Pod) (kind, name string) {
	for _, o := range pod.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		switch o.Kind {
		case "ReplicaSet":
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
				return "deployments", strings.TrimSuffix(o.Name, "-"+h)
			}
			return "replicasets", o.Name
		case "StatefulSet", "DaemonSet", "Job", "CronJob", "Deployment":
			return strings.ToLower(o.Kind) + "s", o.Name
		}
	}
	if pod.Name != "" {
		return "", pod.Name
	}
	return "", strings.TrimSuffix(pod.GenerateName, "-")
}
