// Package kubeinject holds `mesh kube-inject`.
package kubeinject

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	meshapi "istio.io/api/mesh/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/inject"
)

// Options are the flags of `mesh kube-inject`.
type Options struct {
	*cli.Context
	Filename      string
	ValuesFile    string
	MeshConfig    string // --meshConfigFile
	MeshNamespace string
	Revision      string
	Output        *cli.Output

	values inject.Values
}

// NewCommand builds `mesh kube-inject`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx, Output: cli.NewOutput(cli.OutputYAML, cli.OutputYAML, cli.OutputJSON)}
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE",
		Short: "Add the mesh proxy to the pods of Kubernetes manifests, offline",
		Long: `kube-inject adds the mesh proxy container and the traffic-capture init
container to every Pod and pod template (Deployment, StatefulSet, DaemonSet,
ReplicaSet, Job, CronJob) of the manifests, exactly as the injection webhook
would, and prints the result. Other documents pass through unchanged; pods
labelled sidecar.mesh.io/inject=false are left alone.

The injector values (proxy image, discovery address, ...) come from
--injector-values, or else from the cluster's mesh-sidecar-injector ConfigMap.
Read from the cluster, the API server's version decides, as for the webhook,
whether the proxy is a native sidecar (Kubernetes 1.29 or later); offline the
proxy is a regular container unless the values say nativeSidecars: true or a
pod has sidecar.istio.io/nativeSidecar: "true".`,
		Example: `  # Inject offline with values from a file
  mesh kube-inject -f bookinfo.yaml --injector-values values.yaml > bookinfo-injected.yaml

  # Use the installed control plane's values
  mesh kube-inject -f bookinfo.yaml | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	f := cmd.Flags()
	f.StringVarP(&o.Filename, "filename", "f", "", `manifest file to inject ("-" for standard input)`)
	f.StringVar(&o.ValuesFile, "injector-values", "", "injector values file (default: the cluster's mesh-sidecar-injector ConfigMap)")
	f.StringVar(&o.MeshConfig, "meshConfigFile", "", "mesh config file whose defaultConfig pods' proxy.istio.io/config is merged over (default: the cluster's mesh ConfigMap when the values come from the cluster; none with --injector-values)")
	f.StringVar(&o.MeshNamespace, "mesh-namespace", "mesh-system", "namespace of the control plane, for reading its ConfigMap")
	f.VarP(cli.NewRevision(&o.Revision, true), "revision", "r", "control plane revision whose values to use")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete has nothing to derive: the values are read in Run, after Validate.
func (o *Options) Complete(*cobra.Command, []string) error { return nil }

// Validate checks the flags before anything is read.
func (o *Options) Validate() error {
	if o.Filename == "" {
		return cli.Usagef("-f is required: the manifest file to inject, or - for standard input")
	}
	return nil
}

// loadValues reads the injector values from --injector-values or the cluster.
func (o *Options) loadValues(ctx context.Context) error {
	if o.ValuesFile != "" {
		data, err := os.ReadFile(o.ValuesFile)
		if err != nil {
			return cli.Data(fmt.Errorf("--injector-values: %w", err))
		}
		v, err := inject.ParseValues(data)
		if err != nil {
			return cli.Data(fmt.Errorf("%s: %w", o.ValuesFile, err))
		}
		if v.MeshDefaults, err = o.meshDefaultsFromFile(); err != nil {
			return err
		}
		o.values = v
		return nil
	}
	kube, err := o.KubeClient()
	if err != nil {
		return fmt.Errorf("no --injector-values and no cluster to read them from: %w", err)
	}
	name := "mesh-sidecar-injector"
	if o.Revision != "" && o.Revision != "default" {
		name += "-" + o.Revision
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cm, err := kube.CoreV1().ConfigMaps(o.MeshNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read injector values from ConfigMap %s/%s (is the mesh installed? or pass --injector-values): %w", o.MeshNamespace, name, err)
	}
	v, err := inject.ParseValues([]byte(cm.Data["values"]))
	if err != nil {
		return fmt.Errorf("ConfigMap %s/%s: %w", o.MeshNamespace, name, err)
	}
	// The cluster's version decides native sidecars, as it does for the webhook.
	info, err := kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("read the API server's version (it decides whether the proxy is a native sidecar): %w", err)
	}
	v.KubeVersion = info.GitVersion
	// meshConfig.defaultConfig, which proxy.istio.io/config is merged over.
	if o.MeshConfig != "" {
		if v.MeshDefaults, err = o.meshDefaultsFromFile(); err != nil {
			return err
		}
	} else {
		meshName := "mesh" + strings.TrimPrefix(name, "mesh-sidecar-injector")
		mcm, err := kube.CoreV1().ConfigMaps(o.MeshNamespace).Get(ctx, meshName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// No mesh config: pilot runs on the defaults too.
		case err != nil:
			return fmt.Errorf("read the mesh config from ConfigMap %s/%s (or pass --meshConfigFile): %w", o.MeshNamespace, meshName, err)
		default:
			if v.MeshDefaults, err = inject.MeshDefaults([]byte(mcm.Data["mesh"])); err != nil {
				return fmt.Errorf("ConfigMap %s/%s key mesh: %w", o.MeshNamespace, meshName, err)
			}
		}
	}
	o.values = v
	return nil
}

// meshDefaultsFromFile reads --meshConfigFile's defaultConfig (nil without the flag).
func (o *Options) meshDefaultsFromFile() (*meshapi.ProxyConfig, error) {
	if o.MeshConfig == "" {
		return nil, nil
	}
	data, err := os.ReadFile(o.MeshConfig)
	if err != nil {
		return nil, cli.Data(fmt.Errorf("--meshConfigFile: %w", err))
	}
	pc, err := inject.MeshDefaults(data)
	if err != nil {
		return nil, cli.Data(fmt.Errorf("%s: %w", o.MeshConfig, err))
	}
	return pc, nil
}

// Run reads the values, injects and prints.
func (o *Options) Run(ctx context.Context) error {
	if err := o.loadValues(ctx); err != nil {
		return err
	}
	var in io.Reader
	name := o.Filename
	if name == "-" {
		in, name = o.In, "<stdin>"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return cli.Data(fmt.Errorf("-f: %w", err))
		}
		defer f.Close()
		in = f
	}
	var buf bytes.Buffer
	if err := inject.Manifests(name, in, &buf, o.values); err != nil {
		return cli.Data(err)
	}
	if o.Output.Format() == cli.OutputJSON {
		return writeJSON(o.Out, buf.Bytes())
	}
	_, err := o.Out.Write(buf.Bytes())
	return err
}

// writeJSON prints the documents as one v1 List, the way kubectl prints
// several objects as JSON.
func writeJSON(w io.Writer, yamlStream []byte) error {
	var items []any
	for _, doc := range strings.Split(string(yamlStream), "\n---\n") {
		var obj any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return err
		}
		if obj != nil {
			items = append(items, obj)
		}
	}
	return cli.PrintStructured(w, "json", map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
}
