package analyze

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/cli"
)

// Output formats for messages.
const (
	FormatLog    = "log"
	FormatJSON   = "json"
	FormatYAML   = "yaml"
	FormatSARIF  = "sarif"
	FormatGitHub = "github"
)

// Formats lists the output formats Write accepts.
var Formats = []string{FormatLog, FormatJSON, FormatYAML, FormatSARIF, FormatGitHub}

// Record is a message as written by the json and yaml formats.
type Record struct {
	Code      string `json:"code"`
	Level     string `json:"level"`
	Type      string `json:"type"`
	Resource  string `json:"resource"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
}

// Records converts messages to their structured form.
func Records(msgs []Message) []Record {
	out := make([]Record, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, Record{
			Code: m.Type.Code, Level: m.Type.Level.String(), Type: m.Type.Name,
			Resource: m.Resource.Ref(), Kind: m.Resource.Kind, Name: m.Resource.Name, Namespace: m.Resource.Namespace,
			Field: m.Field, Message: m.Text, File: m.Origin().File, Line: m.Origin().Line,
		})
	}
	return out
}

// WriteOptions tune Write.
type WriteOptions struct {
	Colors *cli.Colors
	// Scope describes what was analysed, for the log format's all-clear line.
	Scope string
	// ToolVersion goes into the SARIF driver.
	ToolVersion string
}

// Write prints msgs in format.
func Write(w io.Writer, format string, msgs []Message, opts WriteOptions) error {
	switch format {
	case FormatLog, "":
		return writeLog(w, msgs, opts)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(Records(msgs))
	case FormatYAML:
		b, err := yaml.Marshal(Records(msgs))
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	case FormatSARIF:
		return writeSARIF(w, msgs, opts)
	case FormatGitHub:
		return writeGitHub(w, msgs)
	}
	return fmt.Errorf("unknown output format %q: expected one of %s", format, strings.Join(Formats, ", "))
}

func writeLog(w io.Writer, msgs []Message, opts WriteOptions) error {
	c := opts.Colors
	if len(msgs) == 0 {
		_, err := fmt.Fprintf(w, "%s No issues found when analyzing %s.\n", c.OK("✔"), opts.Scope)
		return err
	}
	for _, m := range msgs {
		level := m.Type.Level.String()
		switch m.Type.Level {
		case Error:
			level = c.Bad(level)
		case Warning:
			level = c.Warn(level)
		}
		text := m.Text
		if m.Field != "" {
			text = fmt.Sprintf("%s %s", c.Faint(m.Field+":"), text)
		}
		if _, err := fmt.Fprintf(w, "%s [%s] (%s) %s\n", level, c.Bold(m.Type.Code), m.where(), text); err != nil {
			return err
		}
	}
	return nil
}

// writeGitHub prints GitHub Actions workflow commands, which the runner
// turns into annotations on the files.
func writeGitHub(w io.Writer, msgs []Message) error {
	for _, m := range msgs {
		cmd := map[Level]string{Error: "error", Warning: "warning", Info: "notice"}[m.Type.Level]
		props := []string{}
		if f := m.Origin().File; f != "" && f != "-" {
			props = append(props, "file="+ghProperty(f))
			if l := m.Origin().Line; l > 0 {
				props = append(props, fmt.Sprintf("line=%d", l))
			}
		}
		props = append(props, "title="+ghProperty(fmt.Sprintf("%s %s", m.Type.Code, m.Type.Name)))
		text := fmt.Sprintf("(%s) %s", m.Resource.Ref(), m.Text)
		if m.Field != "" {
			text = fmt.Sprintf("(%s) %s: %s", m.Resource.Ref(), m.Field, m.Text)
		}
		if _, err := fmt.Fprintf(w, "::%s %s::%s\n", cmd, strings.Join(props, ","), ghData(text)); err != nil {
			return err
		}
	}
	return nil
}

func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
