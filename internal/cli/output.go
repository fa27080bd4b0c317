package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Output formats accepted by -o on commands that print data.
const (
	OutputTable = ""
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// ValidateOutput rejects an -o value not in allowed (the table format "" is always allowed).
func ValidateOutput(got string, allowed ...string) error {
	if got == OutputTable {
		return nil
	}
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return Usagef("unknown output format %q for -o: expected one of %v", got, allowed)
}

// PrintStructured writes v to w as indented JSON or YAML.
func PrintStructured(w io.Writer, format string, v any) error {
	switch format {
	case OutputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		return Usagef("unknown output format %q: expected json or yaml", format)
	}
}

// NewTable returns a tabwriter with the column layout every mesh table uses.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}
