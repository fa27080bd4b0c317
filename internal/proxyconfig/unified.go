package proxyconfig

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"mesh.dev/mesh/internal/configdump"
)

// Unified renders both dumps as sorted, indented JSON, one block per
// resource and volatile fields removed, and returns their unified diff
// ("" when equal). nameA and nameB label the two sides.
func Unified(a, b *configdump.Dump, nameA, nameB string) (string, error) {
	ta, err := render(a)
	if err != nil {
		return "", err
	}
	tb, err := render(b)
	if err != nil {
		return "", err
	}
	if ta == tb {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(ta),
		B:        difflib.SplitLines(tb),
		FromFile: nameA,
		ToFile:   nameB,
		Context:  3,
	})
}

func render(d *configdump.Dump) (string, error) {
	c, err := canonical(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, k := range sortedKeys(c) {
		e := c[k]
		out, err := json.MarshalIndent(e.value, "", "  ")
		if err != nil {
			return "", fmt.Errorf("render %s %q: %w", e.kind, e.name, err)
		}
		fmt.Fprintf(&b, "# %s %s\n%s\n", e.kind, e.name, out)
	}
	return b.String(), nil
}
