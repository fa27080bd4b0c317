package proxyconfig

import (
	"encoding/json"
	"fmt"
	"io"

	"mesh.dev/mesh/internal/cli"
)

// PrintDiff writes d for a person: one line per added, removed or changed
// resource, and for a change its fields' paths with old → new values.
func PrintDiff(w io.Writer, c *cli.Colors, d Diff, la, lb string) error {
	if d.Empty() {
		_, err := fmt.Fprintf(w, "%s and %s have the same configuration (ignoring last_updated, version_info and nonces).\n", la, lb)
		return err
	}
	fmt.Fprintf(w, "--- %s\n+++ %s\n", la, lb)
	for _, r := range d.Resources {
		switch r.Change {
		case Added:
			fmt.Fprintf(w, "%s %s %s\n", c.OK("+ added  "), r.Kind, r.Name)
		case Removed:
			fmt.Fprintf(w, "%s %s %s\n", c.Bad("- removed"), r.Kind, r.Name)
		default:
			fmt.Fprintf(w, "%s %s %s\n", c.Warn("~ changed"), r.Kind, r.Name)
			for _, f := range r.Fields {
				fmt.Fprintf(w, "    %s: %s → %s\n", f.Path, value(f.Old), value(f.New))
			}
		}
	}
	return nil
}

// value prints a field's JSON value on one line, or (absent) when one side lacks it.
func value(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
