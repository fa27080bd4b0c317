package validation

import (
	"math/rand"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// TestNameChecksAgreeWithAPIMachinery holds the fast paths to the answers
// apimachinery gives, on chosen edge cases and random strings over the
// characters that matter.
func TestNameChecksAgreeWithAPIMachinery(t *testing.T) {
	cases := []string{"", "a", "-", "a-", "-a", "a-b", "A", "aB", "a_b", "a.b", "a..b", ".a", "a.", "9", "a/b", "example.com/a",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 127) + "a", "a b", "ä"}
	rng := rand.New(rand.NewSource(1))
	const alphabet = "abzAZ09-_./ "
	for i := 0; i < 20000; i++ {
		b := make([]byte, rng.Intn(8))
		for j := range b {
			b[j] = alphabet[rng.Intn(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		for _, c := range []struct {
			name       string
			fast, slow func(string) []string
		}{
			{"DNS1123Label", dns1123Label, validation.IsDNS1123Label},
			{"DNS1123Subdomain", dns1123Subdomain, validation.IsDNS1123Subdomain},
			{"QualifiedName", qualifiedName, validation.IsQualifiedName},
			{"LabelValue", labelValue, validation.IsValidLabelValue},
		} {
			if got, want := c.fast(s), c.slow(s); !slices.Equal(got, want) {
				t.Errorf("%s(%q) = %q, apimachinery says %q", c.name, s, got, want)
			}
		}
	}
}
