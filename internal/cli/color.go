package cli

import (
	"io"
	"os"

	"github.com/fatih/color"
	"golang.org/x/term"
)

// Colors paints text for a terminal; every coloured string in mesh goes through it.
type Colors struct {
	enabled bool
	ok      *color.Color
	bad     *color.Color
	warn    *color.Color
	bold    *color.Color
	faint   *color.Color
}

// NewColors decides whether w gets colour: only when wanted, NO_COLOR is unset and w is a terminal.
func NewColors(w io.Writer, wanted bool) *Colors {
	enabled := wanted && os.Getenv("NO_COLOR") == "" && IsTerminal(w)
	c := &Colors{
		enabled: enabled,
		ok:      color.New(color.FgGreen),
		bad:     color.New(color.FgRed),
		warn:    color.New(color.FgYellow),
		bold:    color.New(color.Bold),
		faint:   color.New(color.Faint),
	}
	for _, p := range []*color.Color{c.ok, c.bad, c.warn, c.bold, c.faint} {
		if enabled {
			p.EnableColor()
		} else {
			p.DisableColor()
		}
	}
	return c
}

// Enabled reports whether output is coloured.
func (c *Colors) Enabled() bool { return c != nil && c.enabled }

// OK paints success (green).
func (c *Colors) OK(s string) string { return c.paint(c.ok, s) }

// Bad paints failure (red).
func (c *Colors) Bad(s string) string { return c.paint(c.bad, s) }

// Warn paints a warning (yellow).
func (c *Colors) Warn(s string) string { return c.paint(c.warn, s) }

// Bold makes s stand out.
func (c *Colors) Bold(s string) string { return c.paint(c.bold, s) }

// Faint dims s.
func (c *Colors) Faint(s string) string { return c.paint(c.faint, s) }

func (c *Colors) paint(p *color.Color, s string) string {
	if !c.Enabled() {
		return s
	}
	return p.Sprint(s)
}

// IsTerminal reports whether w is an interactive terminal.
func IsTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
