// Package manifest holds `mesh manifest generate` and `mesh manifest diff`,
// and the --set/-f/--revision flags every command that renders the mesh shares.
package manifest

import (
	"errors"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/spec"
)

// SpecFlags are the flags that choose what to render: --set, -f and
// --revision. install, upgrade and precheck embed them too so the same
// arguments mean the same everywhere.
type SpecFlags struct {
	Sets     []string
	Files    []string
	Revision string
}

// AddFlags binds the flags onto fs.
func (f *SpecFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.Sets, "set", nil, "set a MeshOperator spec path, e.g. --set profile=demo or --set components.ingressGateways[name:mesh-ingressgateway].enabled=false (repeatable; wins over -f)")
	fs.StringArrayVarP(&f.Files, "filename", "f", nil, "MeshOperator or IstioOperator overlay file, merged over the profile in order (repeatable)")
	fs.StringVarP(&f.Revision, "revision", "r", "", "control plane revision, so several can run side by side (sets spec.revision)")
}

// Validate rejects flag values that can be judged without reading anything.
func (f *SpecFlags) Validate() error {
	if f.Revision != "" {
		if errs := validation.IsDNS1123Label(f.Revision); len(errs) > 0 {
			return cli.Usagef("--revision %q: %s (use lower-case letters, digits and '-')", f.Revision, errs[0])
		}
	}
	return nil
}

// Load merges profile, files and --set into a MeshOperator; its errors are
// already classified for exit codes (see LoadError).
func (f *SpecFlags) Load() (*spec.MeshOperator, []string, error) {
	op, warnings, err := spec.Load(spec.LoadOptions{Files: f.Files, Sets: f.Sets, Revision: f.Revision})
	return op, warnings, LoadError(err)
}

// LoadError classifies an error of spec.Load: --set mistakes are bad usage
// (exit 64), file and spec problems bad input data (exit 65).
func LoadError(err error) error {
	if err == nil {
		return nil
	}
	var setErr *spec.SetError
	if errors.As(err, &setErr) {
		return cli.Usage(err)
	}
	return cli.Data(err)
}
