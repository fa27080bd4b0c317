// Package refdocs writes the command reference in docs/reference from the
// cobra command tree, one Markdown page per command.
package refdocs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// Pages renders the reference for root: file name → Markdown. The pages
// must not depend on the machine, so flag defaults naming the home
// directory are written as $HOME.
func Pages(root *cobra.Command) (map[string][]byte, error) {
	root.DisableAutoGenTag = true
	home, _ := os.UserHomeDir()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if home != "" && strings.Contains(f.DefValue, home) {
					f.DefValue = strings.ReplaceAll(f.DefValue, home, "$HOME")
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)

	pages := map[string][]byte{}
	var index bytes.Buffer
	index.WriteString("# Command reference\n\nGenerated from the command tree by `make docs`; do not edit.\n\n")
	var render func(*cobra.Command) error
	render = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != root || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		var b bytes.Buffer
		if err := doc.GenMarkdownCustom(c, &b, func(s string) string { return s }); err != nil {
			return fmt.Errorf("render %s: %w", c.CommandPath(), err)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
		pages[name] = b.Bytes()
		depth := strings.Count(c.CommandPath(), " ")
		fmt.Fprintf(&index, "%s- [%s](%s) — %s\n", strings.Repeat("  ", depth), c.CommandPath(), name, c.Short)
		subs := c.Commands()
		sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
		for _, sub := range subs {
			if err := render(sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := render(root); err != nil {
		return nil, err
	}
	pages["README.md"] = index.Bytes()
	return pages, nil
}

// Write replaces the Markdown pages in dir with the reference for root.
func Write(root *cobra.Command, dir string) error {
	pages, err := Pages(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	for _, f := range old {
		if _, keep := pages[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, b := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
