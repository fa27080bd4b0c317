// Package runtime holds Envoy's runtime values (the bootstrap's
// layered_runtime static layers) that filters read through runtime keys,
// such as a RuntimeFractionalPercent's runtime_key.
package runtime

import (
	"fmt"
	"math"
	"strconv"
	"sync/atomic"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/match"
)

// Runtime is the merged view of the runtime layers; the zero value and nil have no keys.
type Runtime struct {
	vals atomic.Pointer[map[string]*structpb.Value]
}

// FromBootstrap builds the runtime from layered_runtime: static layers are
// merged in order (a later layer overrides an earlier one), with nested
// structs flattened to dotted keys as Envoy does. Layers the proxy cannot
// read (disk, admin, RTDS) are errors naming the layer.
func FromBootstrap(b *bootstrapv3.Bootstrap) (*Runtime, error) {
	r := &Runtime{}
	vals := map[string]*structpb.Value{}
	for i, l := range b.GetLayeredRuntime().GetLayers() {
		f := fmt.Sprintf("layered_runtime.layers[%d] (%s)", i, l.GetName())
		switch s := l.GetLayerSpecifier().(type) {
		case *bootstrapv3.RuntimeLayer_StaticLayer:
			flatten("", s.StaticLayer.GetFields(), vals)
		case *bootstrapv3.RuntimeLayer_AdminLayer_:
			// Envoy's admin layer starts empty and changes only through /runtime_modify, which mesh-proxy does not serve.
		default:
			return nil, fmt.Errorf("%s: %T layers are not supported (use static_layer)", f, s)
		}
	}
	r.vals.Store(&vals)
	return r, nil
}

// FromMap builds a runtime from flat keys (tests and embedders).
func FromMap(m map[string]any) (*Runtime, error) {
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, err
	}
	vals := map[string]*structpb.Value{}
	flatten("", s.GetFields(), vals)
	r := &Runtime{}
	r.vals.Store(&vals)
	return r, nil
}

func flatten(prefix string, fields map[string]*structpb.Value, out map[string]*structpb.Value) {
	for k, v := range fields {
		key := prefix + k
		if st := v.GetStructValue(); st != nil && !isFractionalPercent(st) {
			flatten(key+".", st.GetFields(), out)
			continue
		}
		out[key] = v
	}
}

// isFractionalPercent tells a FractionalPercent value ({numerator, denominator}) from a nested layer.
func isFractionalPercent(s *structpb.Struct) bool {
	_, ok := s.GetFields()["numerator"]
	return ok
}

func (r *Runtime) get(key string) *structpb.Value {
	if r == nil || key == "" {
		return nil
	}
	p := r.vals.Load()
	if p == nil || len(*p) == 0 {
		return nil
	}
	return (*p)[key]
}

// Keys returns how many runtime keys are set.
func (r *Runtime) Keys() int {
	if r == nil {
		return 0
	}
	if p := r.vals.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// String returns the value at key as text, "" when unset.
func (r *Runtime) String(key string) string {
	v := r.get(key)
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	}
	return ""
}

// Fraction is a compiled RuntimeFractionalPercent: a default share that a runtime key can override.
type Fraction struct {
	Key     string
	Default match.Fraction
	denom   typev3.FractionalPercent_DenominatorType
}

// CompileFraction compiles a RuntimeFractionalPercent; nil means unset and gives def.
func CompileFraction(p *corev3.RuntimeFractionalPercent, def match.Fraction) Fraction {
	if p == nil {
		return Fraction{Default: def}
	}
	return Fraction{Key: p.GetRuntimeKey(), Default: match.CompileFraction(p.GetDefaultValue()), denom: p.GetDefaultValue().GetDenominator()}
}

// FractionOf is a FractionalPercent default (nil: 100%) that runtime key can override.
func FractionOf(p *typev3.FractionalPercent, key string) Fraction {
	return Fraction{Key: key, Default: match.CompileFraction(p), denom: p.GetDenominator()}
}

// Value is the share in effect now: the runtime key's value when set, else
// the default. As in Envoy, a number at the key is a numerator over the
// default's denominator (a percentage for the usual HUNDRED), and a
// {numerator, denominator} struct is a FractionalPercent.
func (r *Runtime) Value(f *Fraction) match.Fraction {
	if f.Key == "" {
		return f.Default
	}
	v := r.get(f.Key)
	if v == nil {
		return f.Default
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if k.NumberValue < 0 || math.IsNaN(k.NumberValue) {
			return f.Default
		}
		return match.CompileFraction(&typev3.FractionalPercent{Numerator: uint32(min(k.NumberValue, 1e9)), Denominator: f.denom})
	case *structpb.Value_StringValue:
		n, err := strconv.ParseUint(k.StringValue, 10, 32)
		if err != nil {
			return f.Default
		}
		return match.CompileFraction(&typev3.FractionalPercent{Numerator: uint32(n), Denominator: f.denom})
	case *structpb.Value_StructValue:
		fs := k.StructValue.GetFields()
		fp := &typev3.FractionalPercent{Numerator: uint32(fs["numerator"].GetNumberValue())}
		switch d := fs["denominator"]; d.GetStringValue() {
		case "", "HUNDRED":
			fp.Denominator = typev3.FractionalPercent_HUNDRED
			if d.GetKind() != nil && d.GetStringValue() == "" {
				fp.Denominator = typev3.FractionalPercent_DenominatorType(d.GetNumberValue())
			}
		case "TEN_THOUSAND":
			fp.Denominator = typev3.FractionalPercent_TEN_THOUSAND
		case "MILLION":
			fp.Denominator = typev3.FractionalPercent_MILLION
		default:
			return f.Default
		}
		return match.CompileFraction(fp)
	}
	return f.Default
}

// Enabled draws once against the fraction in effect.
func (r *Runtime) Enabled(f *Fraction) bool {
	if f.Key == "" {
		return f.Default.Hit()
	}
	return r.Value(f).Hit()
}
