// Package tag holds `mesh tag set|list|remove`: revision tags, names that
// namespaces point at (label mesh.io/rev=<tag>) and that map to a revision.
package tag

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// NewCommand builds `mesh tag` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag",
		Short: "Point revision tags (namespace labels) at control plane revisions",
		Long: `A revision tag is a stable name for a control plane revision. Namespaces
labelled mesh.io/rev=<tag> get their sidecars from the revision the tag points
at, so moving workloads to a new revision is one ` + "`mesh tag set`" + ` and a
rollout restart, without relabelling every namespace.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSetCommand(ctx), newListCommand(ctx), newRemoveCommand(ctx))
	return cmd
}

// SetOptions are the flags of `mesh tag set`.
type SetOptions struct {
	*cli.Context
	Tag       string
	Revision  string
	Overwrite bool
	client    *kube.Client
}

func newSetCommand(ctx *cli.Context) *cobra.Command {
	o := &SetOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:     "set TAG --revision REVISION",
		Short:   "Create or move a revision tag",
		Example: "  mesh tag set prod --revision canary\n  kubectl label namespace shop mesh.io/rev=prod",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Tag = args[0]
			if err := o.Validate(); err != nil {
				return err
			}
			c, err := kube.FromCLI(o.Context)
			if err != nil {
				return err
			}
			o.client = c
			return o.Run(orBackground(cmd.Context()))
		},
	}
	cmd.Flags().StringVar(&o.Revision, "revision", "", "the installed revision the tag points at (required)")
	cmd.Flags().BoolVar(&o.Overwrite, "overwrite", false, "move a tag that already points at another revision")
	return cmd
}

// Validate checks the tag name and that a revision was given.
func (o *SetOptions) Validate() error {
	if o.Revision == "" {
		return cli.Usagef("--revision is required: the installed revision the tag %q points at", o.Tag)
	}
	if err := install.ValidateTagName(o.Tag); err != nil {
		return cli.Usage(err)
	}
	return nil
}

// Run points the tag at the revision.
func (o *SetOptions) Run(ctx context.Context) error {
	if _, err := o.client.ServerVersion(ctx); err != nil {
		return err
	}
	t, err := install.SetTag(ctx, o.client, o.Tag, o.Revision, o.Overwrite)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s Tag %s points at revision %s", cli.NewColors(o.Out, o.Color).OK("✔"), t.Tag, t.Revision)
	if len(t.Namespaces) > 0 {
		fmt.Fprintf(o.Out, "; namespaces using it: %v (restart their workloads to move them)", t.Namespaces)
	}
	fmt.Fprintln(o.Out)
	return nil
}

// ListOptions are the flags of `mesh tag list`.
type ListOptions struct {
	*cli.Context
	Output string
}

func newListCommand(ctx *cli.Context) *cobra.Command {
	o := &ListOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List revision tags, their revisions and the namespaces that use them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ValidateOutput(o.Output, cli.OutputJSON, cli.OutputYAML); err != nil {
				return err
			}
			c, err := kube.FromCLI(o.Context)
			if err != nil {
				return err
			}
			return o.Run(orBackground(cmd.Context()), c)
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "print the tags as json or yaml")
	return cmd
}

// Run prints the tags.
func (o *ListOptions) Run(ctx context.Context, c *kube.Client) error {
	if _, err := c.ServerVersion(ctx); err != nil {
		return err
	}
	list, err := install.ListTags(ctx, c)
	if err != nil {
		return err
	}
	if o.Output != "" {
		if list == nil {
			list = []install.Tag{}
		}
		return cli.PrintStructured(o.Out, o.Output, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(o.Out, "No revision tags. Create one with `mesh tag set TAG --revision REVISION`.")
		return nil
	}
	tw := cli.NewTable(o.Out)
	fmt.Fprintln(tw, "TAG\tREVISION\tNAMESPACES")
	for _, t := range list {
		ns := "-"
		if len(t.Namespaces) > 0 {
			ns = fmt.Sprint(t.Namespaces)
			ns = ns[1 : len(ns)-1]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Tag, t.Revision, ns)
	}
	return tw.Flush()
}

// RemoveOptions are the flags of `mesh tag remove`.
type RemoveOptions struct {
	*cli.Context
	Tag string
	Yes bool
}

func newRemoveCommand(ctx *cli.Context) *cobra.Command {
	o := &RemoveOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:   "remove TAG",
		Short: "Remove a revision tag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Tag = args[0]
			c, err := kube.FromCLI(o.Context)
			if err != nil {
				return err
			}
			return o.Run(orBackground(cmd.Context()), c)
		},
	}
	cmd.Flags().BoolVarP(&o.Yes, "skip-confirmation", "y", false, "remove the tag even while namespaces still use it")
	return cmd
}

// Run removes the tag; while namespaces use it, only with -y.
func (o *RemoveOptions) Run(ctx context.Context, c *kube.Client) error {
	if _, err := c.ServerVersion(ctx); err != nil {
		return err
	}
	t, err := install.GetTag(ctx, c, o.Tag)
	if err != nil {
		return err
	}
	if len(t.Namespaces) > 0 && !o.Yes {
		return fmt.Errorf("tag %s is still used by namespaces %v: new pods there would get no sidecar; relabel them, or pass -y to remove the tag anyway", o.Tag, t.Namespaces)
	}
	if err := install.RemoveTag(ctx, c, o.Tag); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s Removed tag %s (it pointed at revision %s)\n", cli.NewColors(o.Out, o.Color).OK("✔"), t.Tag, t.Revision)
	return nil
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
