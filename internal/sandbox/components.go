package sandbox

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Address plan. The control plane listens on 127.0.0.1 only. Pods and Services
// get addresses from the benchmarking range 198.18.0.0/15 because Kubernetes
// refuses loopback addresses in EndpointSlices and nothing here may address a
// private or public range.
const (
	// PodCIDR is the range kwok hands pod IPs out of.
	PodCIDR = "198.18.0.0/16"
	// ServiceCIDR is the apiserver's --service-cluster-ip-range.
	ServiceCIDR = "198.19.0.0/16"
	// advertiseAddress is what the apiserver would publish as the "kubernetes"
	// Service endpoint. The endpoint reconciler is off, so it is never written
	// nor dialled; it only keeps the apiserver from picking a host interface.
	advertiseAddress = "198.18.255.254"
	// kubernetesServiceIP is the first address of ServiceCIDR, which the
	// apiserver gives the "kubernetes" Service.
	kubernetesServiceIP = "198.19.0.1"
	// serviceAccountIssuer is the iss claim of ServiceAccount tokens.
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// kwokNodeAnnotation marks the nodes kwok manages.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// layout names the files of one sandbox folder.
type layout struct {
	dir string
}

func (l layout) pki(name string) string { return filepath.Join(l.dir, "pki", name) }
func (l layout) etcdData() string       { return filepath.Join(l.dir, "etcd") }
func (l layout) logs() string           { return filepath.Join(l.dir, "logs") }
func (l layout) users() string          { return filepath.Join(l.dir, "users") }
func (l layout) kubeconfig() string     { return filepath.Join(l.dir, "kubeconfig") }
func (l layout) kwokConfig() string     { return filepath.Join(l.dir, "kwok.yaml") }
func (l layout) state() string          { return filepath.Join(l.dir, "state.json") }

// ports are the 127.0.0.1 ports of one sandbox.
type ports struct {
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
	APIServer  int `json:"apiServer"`
	Kwok       int `json:"kwok"`
}

func etcdURL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

func etcdArgs(l layout, p ports) []string {
	peer := etcdURL(p.EtcdPeer)
	client := etcdURL(p.EtcdClient)
	return []string{
		"--name=sandbox",
		"--data-dir=" + l.etcdData(),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=sandbox=" + peer,
		"--initial-cluster-state=new",
		// The data is thrown away with the sandbox; fsync only costs time.
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes=" + strconv.Itoa(1<<30),
		"--auto-compaction-mode=periodic",
		"--auto-compaction-retention=5m",
		"--log-level=warn",
	}
}

func apiserverArgs(l layout, p ports) []string {
	return []string{
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(p.APIServer),
		"--advertise-address=" + advertiseAddress,
		"--endpoint-reconciler-type=none",
		"--etcd-servers=" + etcdURL(p.EtcdClient),
		"--cert-dir=" + filepath.Join(l.dir, "pki"),
		"--client-ca-file=" + l.pki("ca.crt"),
		"--tls-cert-file=" + l.pki("apiserver.crt"),
		"--tls-private-key-file=" + l.pki("apiserver.key"),
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + l.pki("sa.pub"),
		"--service-account-signing-key-file=" + l.pki("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		// The apiserver reaches kwok's kubelet-like server for logs and port-forward.
		"--kubelet-client-certificate=" + l.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + l.pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + l.pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false",
		"--event-ttl=30m",
		// No kube-proxy here: webhooks and aggregated APIs behind a Service are
		// dialled at an endpoint's pod IP (which the sandbox runtime's pods
		// really hold) rather than at the ClusterIP, which nothing serves.
		"--enable-aggregator-routing=true",
	}
}

func controllerManagerArgs(l layout) []string {
	return []string{
		"--kubeconfig=" + l.kubeconfig(),
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers=*",
		"--service-account-private-key-file=" + l.pki("sa.key"),
		"--root-ca-file=" + l.pki("ca.crt"),
		"--cluster-signing-cert-file=" + l.pki("ca.crt"),
		"--cluster-signing-key-file=" + l.pki("ca.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--use-service-account-credentials=false",
		"--node-monitor-period=2s",
		"--profiling=false",
	}
}

func schedulerArgs(l layout) []string {
	return []string{
		"--kubeconfig=" + l.kubeconfig(),
		"--secure-port=0",
		"--leader-elect=false",
		"--profiling=false",
	}
}

func kwokArgs(l layout, p ports, stagesFile string) []string {
	return []string{
		"--kubeconfig=" + l.kubeconfig(),
		"--config=" + stagesFile + "," + l.kwokConfig(),
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--cidr=" + PodCIDR,
		// The nodes' InternalIP is loopback so the apiserver's logs and
		// port-forward requests land on kwok's own server here.
		"--node-ip=127.0.0.1",
		"--node-port=" + strconv.Itoa(p.Kwok),
		"--server-address=127.0.0.1:" + strconv.Itoa(p.Kwok),
		"--tls-cert-file=" + l.pki("kwok.crt"),
		"--tls-private-key-file=" + l.pki("kwok.key"),
		"--node-lease-duration-seconds=40",
	}
}

// kwokConfig is kwok's own configuration; its Stages come from the file
// `make tools` extracts from the kwok module. Each port in forwards becomes a
// ClusterPortForward rule: a port-forward to that port of any pod reaches the
// same port on 127.0.0.1, where a test runs the pod's stand-in.
func kwokConfig(forwards []int32) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: %s
  nodeIP: 127.0.0.1
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  nodePlayStageParallelism: 4
  podPlayStageParallelism: 8
  podsOnNodeSyncParallelism: 2
  enableDebuggingHandlers: true
  enableProfilingHandler: false
`, PodCIDR)
	if len(forwards) > 0 {
		b.WriteString(`---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: mesh-sandbox-loopback
spec:
  forwards:
`)
		for _, p := range forwards {
			fmt.Fprintf(&b, "  - ports: [%d]\n    target:\n      address: 127.0.0.1\n      port: %d\n", p, p)
		}
	}
	return b.String()
}
