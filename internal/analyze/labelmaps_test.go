package analyze

import (
	"maps"
	"testing"
)

func TestLabelMapsShareOnlyEqualSets(t *testing.T) {
	l := newLabelMaps()
	first := map[string]string{"app": "reviews", "version": "v1"}
	same := map[string]string{"version": "v1", "app": "reviews"}
	if got := l.share(first); !sameMap(got, first) {
		t.Fatal("the first map seen is not the one kept")
	}
	if got := l.share(same); !sameMap(got, first) {
		t.Error("an equal map was not shared")
	}
	for _, other := range []map[string]string{
		{"app": "reviews"},
		{"app": "reviews", "version": "v2"},
		{"app": "reviews\x00version\x00v1"}, // no separator confusion
		{"app\x00reviews": "version\x00v1"},
	} {
		if got := l.share(other); !sameMap(got, other) || !maps.Equal(got, other) {
			t.Errorf("share(%q) returned %q", other, got)
		}
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	a["\x01probe"] = "x"
	defer delete(a, "\x01probe")
	return b["\x01probe"] == "x"
}
