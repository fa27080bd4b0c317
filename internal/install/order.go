package install

import (
	"slices"

	"mesh.dev/mesh/internal/kube"
)

func sortRefs(refs []kube.Ref, order map[string]int) {
	sortByKey(refs, func(r kube.Ref) int { return order[r.Key()] })
}

func sortByKey[T any](s []T, key func(T) int) {
	slices.SortStableFunc(s, func(a, b T) int { return key(a) - key(b) })
}
