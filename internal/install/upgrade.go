package install

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/version"
)

// VersionChange is the move from the installed version to the new one.
type VersionChange struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Kind is "upgrade", "downgrade", "same" or "unknown" (a version that does not parse).
	Kind string `json:"kind"`
	// MinorSkip is how many minor versions the move crosses (1 for 1.2 → 1.3).
	MinorSkip int `json:"minorSkip"`
}

// VersionPolicyError refuses a downgrade or a skip of more than one minor version.
type VersionPolicyError struct {
	Change VersionChange
	Reason string
}

func (e *VersionPolicyError) Error() string {
	return fmt.Sprintf("refusing to go from %s to %s: %s; pass --force to do it anyway", e.Change.From, e.Change.To, e.Reason)
}

// CompareVersions classifies the move from one mesh version to another.
func CompareVersions(from, to string) VersionChange {
	c := VersionChange{From: from, To: to, Kind: "unknown"}
	a, err1 := version.ParseSemantic(trimV(from))
	b, err2 := version.ParseSemantic(trimV(to))
	if err1 != nil || err2 != nil {
		if from == to {
			c.Kind = "same"
		}
		return c
	}
	switch cmp, _ := a.Compare(b.String()); {
	case cmp == 0:
		c.Kind = "same"
	case cmp < 0:
		c.Kind = "upgrade"
	default:
		c.Kind = "downgrade"
	}
	if a.Major() == b.Major() {
		c.MinorSkip = int(b.Minor()) - int(a.Minor())
		if c.MinorSkip < 0 {
			c.MinorSkip = -c.MinorSkip
		}
	} else {
		c.MinorSkip = -1 // a major change counts as too far
	}
	return c
}

func trimV(s string) string {
	if len(s) > 0 && s[0] == 'v' {
		return s[1:]
	}
	return s
}

// CheckVersionChange applies the upgrade policy: no downgrades and no skip of
// more than one minor version, unless forced.
func CheckVersionChange(c VersionChange, force bool) error {
	if force {
		return nil
	}
	switch {
	case c.Kind == "downgrade":
		return &VersionPolicyError{Change: c, Reason: "that is a downgrade"}
	case c.MinorSkip < 0:
		return &VersionPolicyError{Change: c, Reason: "that changes the major version"}
	case c.MinorSkip > 1:
		return &VersionPolicyError{Change: c, Reason: fmt.Sprintf("that skips %d minor versions (upgrade one minor version at a time)", c.MinorSkip-1)}
	}
	return nil
}

// NotInstalledError says a revision has no installed-state record.
type NotInstalledError struct {
	Revision  string
	Installed []string
}

func (e *NotInstalledError) Error() string {
	if len(e.Installed) == 0 {
		return fmt.Sprintf("no mesh is installed (revision %q): use `mesh install`", e.Revision)
	}
	return fmt.Sprintf("revision %q is not installed (installed: %v): use `mesh install --revision %s`, or pick an installed --revision", e.Revision, e.Installed, e.Revision)
}

// Upgrader installs a newer rendering over an installed revision.
type Upgrader struct {
	Installer
	Force bool
}

// PlanUpgrade reads the installed record and checks the move to newVersion
// against the policy.
func (u *Upgrader) PlanUpgrade(ctx context.Context, rev, newVersion string) (*Record, VersionChange, error) {
	recs, err := Records(ctx, u.Client)
	if err != nil {
		return nil, VersionChange{}, err
	}
	for _, r := range recs {
		if r.Revision == RevisionLabel(rev) {
			ch := CompareVersions(r.Version, newVersion)
			return &r, ch, CheckVersionChange(ch, u.Force)
		}
	}
	return nil, VersionChange{}, &NotInstalledError{Revision: RevisionLabel(rev), Installed: Revisions(recs)}
}
