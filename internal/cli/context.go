// Package cli holds what every mesh command shares: streams, cluster flags,
// colour, output formats and the typed errors that become exit codes.
package cli

import (
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Context is built once by the root command and handed to every command.
type Context struct {
	genericiooptions.IOStreams
	// ConfigFlags are cli-runtime's --kubeconfig, --context, -n and friends.
	ConfigFlags *genericclioptions.ConfigFlags
	// Color is the --color flag; Colors() combines it with NO_COLOR and the terminal check.
	Color bool
}

// NewContext returns a Context writing to streams.
func NewContext(streams genericiooptions.IOStreams) *Context {
	return &Context{
		IOStreams:   streams,
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		Color:       true,
	}
}

// Colors returns the painter for standard output.
func (c *Context) Colors() *Colors { return NewColors(c.Out, c.Color) }

// ErrColors returns the painter for standard error.
func (c *Context) ErrColors() *Colors { return NewColors(c.ErrOut, c.Color) }

// Namespace returns the namespace chosen by -n or the kubeconfig, and whether -n was given.
func (c *Context) Namespace() (string, bool, error) {
	return c.ConfigFlags.ToRawKubeConfigLoader().Namespace()
}

// RESTConfig returns the client configuration selected by the cluster flags.
func (c *Context) RESTConfig() (*rest.Config, error) {
	return c.ConfigFlags.ToRESTConfig()
}

// KubeClient returns a typed Kubernetes client for the selected cluster.
func (c *Context) KubeClient() (kubernetes.Interface, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
