package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const pollInterval = 100 * time.Millisecond

// poll calls check until it reports done, the context ends or a component
// exits. A component that exits is blamed; otherwise blame is named.
func (c *Cluster) poll(ctx context.Context, blame *process, what string, check func(context.Context) (bool, error)) error {
	var last error
	for {
		for _, p := range c.procs {
			if !p.alive() {
				return p.failure(fmt.Errorf("exited while waiting for %s", what), "")
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		done, err := check(cctx)
		cancel()
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("%s: %w", what, ctx.Err())
			if last != nil {
				err = fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return blame.failure(err, "")
		case <-time.After(pollInterval):
		}
	}
}

func (c *Cluster) waitEtcd(ctx context.Context, etcd *process) error {
	url := etcdURL(c.ports.EtcdClient) + "/health"
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	return c.poll(ctx, etcd, "etcd /health", func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var h struct {
			Health string `json:"health"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			return false, err
		}
		return h.Health == "true", nil
	})
}

func (c *Cluster) waitAPIServer(ctx context.Context, api *process) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	return c.poll(ctx, api, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, firstLines(string(body), 3))
		}
		return strings.TrimSpace(string(body)) == "ok", nil
	})
}

// startNodes registers the kwok nodes and waits until pods can land on them:
// kwok reports them Ready, the node lifecycle controller has lifted the
// not-ready taint, and the ServiceAccount controller has made the default
// ServiceAccount that pod admission requires.
func (c *Cluster) startNodes(ctx context.Context, n int) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	kwok, kcm := c.proc(Kwok), c.proc(ControllerManager)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		cidr := fmt.Sprintf("198.18.%d.0/24", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{kwokNodeAnnotation: "fake"},
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
				},
			},
			Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return c.proc(APIServer).failure(fmt.Errorf("create node %s: %w", name, err), "")
		}
		c.nodes = append(c.nodes, name)
	}
	for _, name := range c.nodes {
		var taints []corev1.Taint
		err := c.poll(ctx, kwok, "node "+name+" to become Ready", func(ctx context.Context) (bool, error) {
			node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			taints = node.Spec.Taints
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					return cond.Status == corev1.ConditionTrue, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return err
		}
		err = c.poll(ctx, kcm, "the not-ready taint on node "+name+" to be lifted", func(ctx context.Context) (bool, error) {
			node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			taints = node.Spec.Taints
			return len(taints) == 0, nil
		})
		var se *StartError
		if errors.As(err, &se) {
			se.Err = fmt.Errorf("%w (taints still on the node: %v)", se.Err, taints)
		}
		if err != nil {
			return err
		}
	}
	return c.poll(ctx, kcm, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

func (c *Cluster) proc(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
