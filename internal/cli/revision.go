package cli

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultRevision is the revision name of the unrevisioned control plane.
const DefaultRevision = "default"

// Revision is the value of a --revision flag: a DNS-1123 label, checked when
// the flag is parsed so a bad name is a usage error (exit 64) on every command.
type Revision struct {
	target *string
	// allowDefault accepts "default" for flags that pick an installed
	// revision; a flag that names the revision to render cannot take it.
	allowDefault bool
}

// NewRevision returns a --revision value writing to target; allowDefault
// accepts "default" as the name of the default revision.
func NewRevision(target *string, allowDefault bool) *Revision {
	return &Revision{target: target, allowDefault: allowDefault}
}

// String returns the revision given (pflag.Value).
func (r *Revision) String() string {
	if r.target == nil {
		return ""
	}
	return *r.target
}

// Type names the value in help (pflag.Value).
func (r *Revision) Type() string { return "string" }

// Set checks the name (pflag.Value).
func (r *Revision) Set(s string) error {
	if s != "" {
		if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
			return fmt.Errorf("not a revision name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. canary, 1-27)")
		}
		if s == DefaultRevision && !r.allowDefault {
			return fmt.Errorf("%q is the unrevisioned control plane's name: leave --revision out for it", s)
		}
	}
	*r.target = s
	return nil
}
