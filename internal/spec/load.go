package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
	"mesh.dev/mesh/internal/version"
	"mesh.dev/mesh/profiles"
)

// LoadOptions say where a MeshOperator comes from. Precedence: the profile,
// then Files in order, then Sets in order, then Revision.
type LoadOptions struct {
	// Files are -f overlays: MeshOperator or IstioOperator YAML.
	Files []string
	// Sets are --set arguments, "path=value", paths relative to spec.
	Sets []string
	// Revision, when not empty, sets spec.revision.
	Revision string
}

// SetError is a --set argument that cannot be used; callers report it as bad usage.
type SetError struct {
	Arg string
	Err error
}

func (e *SetError) Error() string { return fmt.Sprintf("--set %s: %v", e.Arg, e.Err) }
func (e *SetError) Unwrap() error { return e.Err }

// FileError is an -f file that cannot be used; callers report it as bad input data.
type FileError struct {
	File string
	Line int // 0 when the problem has no single line
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}
func (e *FileError) Unwrap() error { return e.Err }

// UnknownProfileError names a profile that does not exist and the ones that do.
type UnknownProfileError struct {
	Name  string
	Valid []string
}

func (e *UnknownProfileError) Error() string {
	return fmt.Sprintf("unknown profile %q: valid profiles are %s", e.Name, strings.Join(e.Valid, ", "))
}

// InvalidSpecError is a merged spec that is well-formed but not installable.
type InvalidSpecError struct{ Err error }

func (e *InvalidSpecError) Error() string { return "invalid mesh spec: " + e.Err.Error() }
func (e *InvalidSpecError) Unwrap() error { return e.Err }

type setArg struct {
	arg   string
	path  Path
	value any
}

// Load merges the profile, the overlay files and the --set flags into one
// MeshOperator and returns it with warnings (IstioOperator fields that have
// no equivalent, for example).
func Load(o LoadOptions) (*MeshOperator, []string, error) {
	var warnings []string
	sets := make([]setArg, 0, len(o.Sets))
	profile := ""
	for _, arg := range o.Sets {
		p, raw, err := ParseSet(arg)
		if err != nil {
			return nil, nil, &SetError{Arg: arg, Err: err}
		}
		n, err := lookup(p)
		if err != nil {
			return nil, nil, &SetError{Arg: arg, Err: err}
		}
		if p[0].Key == "meshConfig" {
			if err := meshConfigPath(p); err != nil {
				return nil, nil, &SetError{Arg: arg, Err: err}
			}
		}
		v, err := typedValue(raw, n)
		if err != nil {
			return nil, nil, &SetError{Arg: arg, Err: err}
		}
		if len(p) == 1 && p[0].Key == "profile" {
			name, _ := v.(string)
			if _, ok := profiles.Get(name); !ok {
				return nil, nil, &SetError{Arg: arg, Err: &UnknownProfileError{Name: name, Valid: profiles.Names()}}
			}
			profile = name
		}
		sets = append(sets, setArg{arg: arg, path: p, value: v})
	}

	type overlay struct {
		file string
		doc  map[string]any
	}
	overlays := make([]overlay, 0, len(o.Files))
	fileProfile, fileProfileFrom := "", ""
	for _, f := range o.Files {
		doc, warns, err := readOverlay(f)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, warns...)
		if spec, ok := doc["spec"].(map[string]any); ok {
			if name, ok := spec["profile"].(string); ok && name != "" {
				fileProfile, fileProfileFrom = name, f
			}
		}
		overlays = append(overlays, overlay{file: f, doc: doc})
	}
	if profile == "" && fileProfile != "" {
		if _, ok := profiles.Get(fileProfile); !ok {
			return nil, nil, &FileError{File: fileProfileFrom, Err: &UnknownProfileError{Name: fileProfile, Valid: profiles.Names()}}
		}
		profile = fileProfile
	}
	if profile == "" {
		profile = DefaultProfile
	}

	tree, err := ProfileTree(profile)
	if err != nil {
		return nil, nil, err
	}
	for _, ov := range overlays {
		tree = Merge(tree, ov.doc).(map[string]any)
	}
	spec, _ := tree["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		tree["spec"] = spec
	}
	for _, s := range sets {
		if err := setPath(spec, s.path, s.value); err != nil {
			return nil, nil, &SetError{Arg: s.arg, Err: err}
		}
	}
	spec["profile"] = profile
	if o.Revision != "" {
		spec["revision"] = o.Revision
	}

	op, err := decode(tree)
	if err != nil {
		return nil, nil, err
	}
	applyDefaults(op)
	if err := validate(op); err != nil {
		return nil, nil, &InvalidSpecError{Err: err}
	}
	warns, err := checkMeshConfig(op.Spec.MeshConfig)
	if err != nil {
		return nil, nil, &InvalidSpecError{Err: err}
	}
	return op, append(warnings, warns...), nil
}

// ProfileTree returns the named built-in profile as a generic document.
func ProfileTree(name string) (map[string]any, error) {
	b, ok := profiles.Get(name)
	if !ok {
		return nil, &UnknownProfileError{Name: name, Valid: profiles.Names()}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("built-in profile %q: %w", name, err)
	}
	return normalize(doc).(map[string]any), nil
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// readOverlay reads one -f file into a MeshOperator document.
func readOverlay(path string) (map[string]any, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &FileError{File: path, Err: err}
	}
	return parseOverlay(path, b)
}

func parseOverlay(path string, b []byte) (map[string]any, []string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		msg := cleanYAMLError(err)
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.Replace(msg, m[0], "", 1)
		}
		return nil, nil, &FileError{File: path, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
	}
	if len(root.Content) == 0 {
		return nil, nil, &FileError{File: path, Err: errors.New("the file is empty: expected a MeshOperator or IstioOperator document")}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, nil, &FileError{File: path, Line: doc.Line, Err: errors.New("expected a MeshOperator or IstioOperator document (a YAML map)")}
	}
	var generic map[string]any
	if err := doc.Decode(&generic); err != nil {
		return nil, nil, &FileError{File: path, Line: doc.Line, Err: err}
	}
	generic = normalize(generic).(map[string]any)
	apiVersion, _ := generic["apiVersion"].(string)
	kind, _ := generic["kind"].(string)
	switch {
	case kind == Kind && (apiVersion == APIVersion || apiVersion == ""):
		for i := 0; i+1 < len(doc.Content); i += 2 {
			k, v := doc.Content[i], doc.Content[i+1]
			switch k.Value {
			case "apiVersion", "kind", "metadata":
			case "spec":
				if err := checkYAML(v, schema(), nil); err != nil {
					return nil, nil, fileLineError(path, err)
				}
			default:
				return nil, nil, &FileError{File: path, Line: k.Line, Err: fmt.Errorf("unknown top-level field %q: expected apiVersion, kind, metadata, spec", k.Value)}
			}
		}
		return generic, nil, nil
	case kind == "IstioOperator":
		out, warns, err := translateIstioOperator(generic)
		if err != nil {
			return nil, nil, &FileError{File: path, Err: err}
		}
		for i := range warns {
			warns[i] = path + ": " + warns[i]
		}
		return out, warns, nil
	default:
		return nil, nil, &FileError{File: path, Line: doc.Line, Err: fmt.Errorf("kind %q (apiVersion %q): expected kind %s (apiVersion %s) or IstioOperator (install.istio.io/v1alpha1)", kind, apiVersion, Kind, APIVersion)}
	}
}

func fileLineError(path string, err error) error {
	var le *lineError
	if errors.As(err, &le) {
		return &FileError{File: path, Line: le.line, Err: le.err}
	}
	return &FileError{File: path, Err: err}
}

// decode turns a generic document into a MeshOperator, rejecting unknown fields.
func decode(tree map[string]any) (*MeshOperator, error) {
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("encode merged spec: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	op := &MeshOperator{}
	if err := dec.Decode(op); err != nil {
		return nil, &InvalidSpecError{Err: err}
	}
	return op, nil
}

func applyDefaults(op *MeshOperator) {
	op.APIVersion, op.Kind = APIVersion, Kind
	s := &op.Spec
	if s.Hub == "" {
		s.Hub = DefaultHub
	}
	if s.Tag == "" {
		s.Tag = version.Version
	}
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if op.Name == "" {
		op.Name = "mesh"
		if s.Revision != "" {
			op.Name += "-" + s.Revision
		}
	}
	if op.Namespace == "" {
		op.Namespace = s.Namespace
	}
}

func validate(op *MeshOperator) error {
	s := op.Spec
	if s.Revision != "" {
		if errs := validation.IsDNS1123Label(s.Revision); len(errs) > 0 {
			return fmt.Errorf("revision %q: %s", s.Revision, strings.Join(errs, "; "))
		}
		if s.Revision == DefaultRevision {
			return fmt.Errorf("revision %q is reserved for the unrevisioned control plane: leave revision empty instead", s.Revision)
		}
	}
	if errs := validation.IsDNS1123Label(s.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", s.Namespace, strings.Join(errs, "; "))
	}
	if err := checkRolloutDefault(s.Values); err != nil {
		return err
	}
	if err := checkGatewaySecretNamespaces(s.Values); err != nil {
		return err
	}
	seen := map[string]string{}
	for kind, gws := range map[string][]GatewaySpec{"ingressGateways": s.Components.IngressGateways, "egressGateways": s.Components.EgressGateways} {
		for i, g := range gws {
			if g.Name == "" {
				return fmt.Errorf("components.%s[%d]: name is required", kind, i)
			}
			if errs := validation.IsDNS1123Label(g.Name); len(errs) > 0 {
				return fmt.Errorf("components.%s[%d].name %q: %s", kind, i, g.Name, strings.Join(errs, "; "))
			}
			if prev, dup := seen[g.Name]; dup {
				return fmt.Errorf("components.%s[%d].name %q is also used in components.%s", kind, i, g.Name, prev)
			}
			seen[g.Name] = kind
			if g.Namespace != "" {
				if errs := validation.IsDNS1123Label(g.Namespace); len(errs) > 0 {
					return fmt.Errorf("components.%s[%d].namespace %q: %s", kind, i, g.Namespace, strings.Join(errs, "; "))
				}
			}
		}
	}
	return nil
}

// Tree returns the MeshOperator as a generic document (for dump and diff).
func (m *MeshOperator) Tree() (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if md, ok := out["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return out, nil
}

// Get returns the value at p (relative to the document root) and whether it exists.
func Get(tree any, p Path) (any, bool) {
	cur := tree
	for _, s := range p {
		switch s.Kind {
		case FieldStep:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[s.Key]; !ok {
				return nil, false
			}
		case IndexStep:
			l, ok := cur.([]any)
			if !ok || s.Index >= len(l) {
				return nil, false
			}
			cur = l[s.Index]
		case SelectStep:
			l, ok := cur.([]any)
			if !ok {
				return nil, false
			}
			found := false
			for _, e := range l {
				if m, ok := e.(map[string]any); ok && fmt.Sprint(m[s.Key]) == s.Value {
					cur, found = e, true
					break
				}
			}
			if !found {
				return nil, false
			}
		}
	}
	return cur, true
}

// checkGatewaySecretNamespaces reads values.pilot.gatewaySecretNamespaces
// as pilot will (--gateway-secret-namespaces) and the charts will (a Role
// per namespace), so a bad list fails the install, naming the field.
func checkGatewaySecretNamespaces(values map[string]any) error {
	pilot, _ := values["pilot"].(map[string]any)
	v, ok := pilot["gatewaySecretNamespaces"]
	if !ok || v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: want a list of namespaces, e.g. [team-a, team-b], or [\"*\"] for every namespace, not %v", credential.NamespacesValue, v)
	}
	nss := make([]string, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return fmt.Errorf("%s[%d]: want a namespace name, not %v", credential.NamespacesValue, i, e)
		}
		nss[i] = s
	}
	return credential.CheckNamespaces(credential.NamespacesValue, nss)
}

// rolloutFields names the rollout annotations by the values that set
// their mesh-wide default (values.pilot.rollout, docs/rollout.md).
var rolloutFields = map[string]string{
	annotation.Stages:             "values.pilot.rollout.stages",
	annotation.Interval:           "values.pilot.rollout.interval",
	annotation.Max5xxRatio:        "values.pilot.rollout.max5xxRatio",
	annotation.MaxLatencyIncrease: "values.pilot.rollout.maxLatencyIncrease",
}

// checkRolloutDefault reads values.pilot.rollout as pilot will (its
// --rollout-* flags), so a bad default fails the install, naming the
// field, instead of pilot's start.
func checkRolloutDefault(values map[string]any) error {
	pilot, _ := values["pilot"].(map[string]any)
	r, ok := pilot["rollout"]
	if !ok || r == nil {
		return nil
	}
	m, ok := r.(map[string]any)
	if !ok {
		return fmt.Errorf("values.pilot.rollout: want a map of stages, interval, max5xxRatio and maxLatencyIncrease, not %T", r)
	}
	field := func(key string) (string, error) {
		switch v := m[key].(type) {
		case nil:
			return "", nil
		case string:
			return strings.TrimSpace(v), nil
		case bool, map[string]any, []any:
			return "", fmt.Errorf("values.pilot.rollout.%s: want a string such as %q, not %v", key, map[string]string{"stages": "10,50,100", "interval": "60s", "max5xxRatio": "0.02", "maxLatencyIncrease": "1.5"}[key], v)
		default:
			return fmt.Sprint(v), nil // a number written without quotes
		}
	}
	var d annotation.Default
	for _, f := range []struct {
		key string
		to  *string
	}{{"stages", &d.Stages}, {"interval", &d.Interval}, {"max5xxRatio", &d.Max5xxRatio}, {"maxLatencyIncrease", &d.MaxLatencyIncrease}} {
		v, err := field(f.key)
		if err != nil {
			return err
		}
		*f.to = v
	}
	return d.Check(rolloutFields)
}
