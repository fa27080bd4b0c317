// Package analyze runs analyzers over a snapshot of mesh configuration and
// the Kubernetes objects it refers to, and reports messages with Istio's
// codes so existing suppressions and runbooks keep working.
package analyze

import (
	"fmt"
	"strings"
)

// Level is how serious a message is.
type Level int

// Levels, least serious first so they compare with < and >=.
const (
	Info Level = iota
	Warning
	Error
)

func (l Level) String() string {
	switch l {
	case Info:
		return "Info"
	case Warning:
		return "Warning"
	case Error:
		return "Error"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel reads a level name, case-insensitively.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return Info, fmt.Errorf("unknown level %q: expected Info, Warning or Error", s)
}

// MessageType is one kind of finding: a stable code, a name and a level.
type MessageType struct {
	Code        string
	Name        string
	Level       Level
	Description string
}
