package manifest

import (
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// FormatChange renders one field change on one line: "path: old -> new".
func FormatChange(f FieldChange) string {
	switch {
	case f.Old == nil:
		return fmt.Sprintf("%s: (added) %s", f.Path, short(f.New))
	case f.New == nil:
		return fmt.Sprintf("%s: %s (removed)", f.Path, short(f.Old))
	default:
		return fmt.Sprintf("%s: %s -> %s", f.Path, short(f.Old), short(f.New))
	}
}

// short prints a value on one line, abbreviating big ones.
func short(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(string(b))
	if strings.Contains(s, "\n") {
		j, _ := json.Marshal(v)
		s = string(j)
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
