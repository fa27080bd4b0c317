package match

import (
	"math/rand/v2"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Fraction is a probability expressed per million, the finest Envoy denominator.
type Fraction uint32

// Always is a fraction that always hits.
const Always Fraction = 1_000_000

// CompileFraction converts a FractionalPercent; nil means 100%.
func CompileFraction(p *typev3.FractionalPercent) Fraction {
	if p == nil {
		return Always
	}
	n := uint64(p.GetNumerator())
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return Fraction(min(n, 1_000_000))
}

// CompilePercent converts a type.v3.Percent (0-100 float); nil means 100%.
func CompilePercent(p *typev3.Percent) Fraction {
	if p == nil {
		return Always
	}
	return Fraction(min(max(p.GetValue(), 0), 100) * 10_000)
}

// Hit draws once against the fraction.
func (f Fraction) Hit() bool {
	if f >= Always {
		return true
	}
	if f == 0 {
		return false
	}
	return rand.Uint32N(1_000_000) < uint32(f)
}
