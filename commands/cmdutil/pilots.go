package cmdutil

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/syncstatus"
)

// PilotFlags are how a command reaches mesh-pilot's debug servers:
// --pilot-address, --pilot-namespace and --revision.
type PilotFlags struct {
	PilotAddress   string
	PilotNamespace string
	Revision       string
}

// AddFlags binds the flags.
func (p *PilotFlags) AddFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&p.PilotAddress, "pilot-address", "", "mesh-pilot's debug server at host:port instead of a port-forward to its pods")
	fs.StringVar(&p.PilotNamespace, "pilot-namespace", "mesh-system", "namespace of the mesh-pilot pods")
	fs.Var(cli.NewRevision(&p.Revision, true), "revision", "the control plane revision to ask (default: the default revision)")
}

// Pilot is one mesh-pilot replica's debug server.
type Pilot struct {
	Name   string // the pod name, or the address given
	Client *syncstatus.Client
}

// WithPilots runs fn against the debug server of every running mesh-pilot
// replica of the revision (each speaks only for itself: the proxies
// connected to it, the rollouts it runs), through port-forwards that last
// until fn returns, or against --pilot-address alone.
func (p *PilotFlags) WithPilots(ctx context.Context, c *cli.Context, fn func([]Pilot) error) error {
	if p.PilotAddress != "" {
		cl, err := syncstatus.New(p.PilotAddress)
		if err != nil {
			return cli.Usage(err)
		}
		return fn([]Pilot{{Name: p.PilotAddress, Client: cl}})
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	kube, err := c.KubeClient()
	if err != nil {
		return err
	}
	rev := p.Revision
	if rev == "" {
		rev = "default"
	}
	sel := "app=mesh-pilot,mesh.io/rev=" + rev
	pods, err := kube.CoreV1().Pods(p.PilotNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("find mesh-pilot in %s: %w", p.PilotNamespace, err)
	}
	var out []Pilot
	for _, pod := range pods.Items {
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		fw, err := adminclient.PortForward(ctx, cfg, p.PilotNamespace, pod.Name, syncstatus.DebugPort, c.ErrOut)
		if err != nil {
			return err
		}
		defer fw.Close()
		cl, err := syncstatus.New(fw.LocalAddress)
		if err != nil {
			return err
		}
		out = append(out, Pilot{Name: pod.Name, Client: cl})
	}
	if len(out) == 0 {
		return fmt.Errorf("no running mesh-pilot pod (%s) in namespace %s: is the mesh installed? (or give --pilot-address)", sel, p.PilotNamespace)
	}
	return fn(out)
}
