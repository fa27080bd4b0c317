package kube

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Parallelism bounds how many requests mesh sends at once: enough to hide
// round trips, few enough not to crowd a small API server.
const Parallelism = 16

// ForEach calls fn for every item with at most Parallelism calls in flight and
// returns the first error; the others see a cancelled context.
func ForEach[T any](ctx context.Context, items []T, fn func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Parallelism)
	for _, it := range items {
		g.Go(func() error { return fn(gctx, it) })
	}
	return g.Wait()
}
