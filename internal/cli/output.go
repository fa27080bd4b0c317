package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Output formats accepted by -o on commands that print data.
const (
	OutputTable = ""
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// Output is the value of a command's -o flag: one of a fixed set of
// formats, checked when the flag is parsed so a bad format is a usage error
// (exit 64) with the same message on every command. The zero format ""
// stands for the command's own table and is valid only when it is the default.
type Output struct {
	format  string
	def     string
	formats []string
}

// NewOutput returns an -o value defaulting to def and accepting formats (and def).
func NewOutput(def string, formats ...string) *Output {
	return &Output{format: def, def: def, formats: formats}
}

// Structured is the -o of commands that print a table or json or yaml.
func Structured() *Output { return NewOutput(OutputTable, OutputJSON, OutputYAML) }

// Format returns the chosen format; "" is the table.
func (o *Output) Format() string { return o.format }

// IsStructured reports whether json or yaml was chosen.
func (o *Output) IsStructured() bool { return o.format == OutputJSON || o.format == OutputYAML }

// Formats lists the formats the flag accepts, for help and shell completion.
func (o *Output) Formats() []string { return slices.Clone(o.formats) }

// Usage is the flag's help text: the formats and, when given, what they print.
func (o *Output) Usage(note string) string {
	u := "output format: " + orList(o.formats)
	if note != "" {
		u += "; " + note
	}
	return u
}

// String returns the chosen format (pflag.Value).
func (o *Output) String() string { return o.format }

// Type names the value in help (pflag.Value); it stays "string" like the plain flags it replaced.
func (o *Output) Type() string { return "string" }

// Set accepts one of the formats, or "" where the table is the default (pflag.Value).
func (o *Output) Set(s string) error {
	if s == o.def || slices.Contains(o.formats, s) {
		o.format = s
		return nil
	}
	return fmt.Errorf("unknown output format: expected %s", orList(o.formats))
}

// Write prints v as indented JSON or YAML when one was chosen; for any other
// format it calls other, which prints the command's own view.
func (o *Output) Write(w io.Writer, v any, other func() error) error {
	if o.IsStructured() {
		return PrintStructured(w, o.format, v)
	}
	return other()
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
		return fmt.Errorf("internal error: %q is not json or yaml", format)
	}
}

// NewTable returns a tabwriter with the column layout every mesh table uses.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

// orList joins "a", "b", "c" as "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
