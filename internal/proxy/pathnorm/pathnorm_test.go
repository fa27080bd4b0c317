package pathnorm

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Istio's four meshConfig.pathNormalization settings, as pilot writes them into the HCM.
var (
	none        = Options{}
	base        = Options{Normalize: true}
	mergeOnly   = Options{Normalize: true, MergeSlashes: true}
	decodeMerge = Options{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeSlashes}
)

// TestIstioNormalization holds what Istio documents (and its integration
// test checks at the backend) for each setting: the path the application
// sees for each request path.
func TestIstioNormalization(t *testing.T) {
	type c struct{ in, none, base, merge, decode string }
	for _, tc := range []c{
		{"/", "/", "/", "/", "/"},
		{"/app#foo", "/app", "/app", "/app", "/app"},
		{"/app/", "/app/", "/app/", "/app/", "/app/"},
		{"/app/../admin", "/app/../admin", "/admin", "/admin", "/admin"},
		{"/app//", "/app//", "/app//", "/app/", "/app/"},
		{"/app/%2f", "/app/%2f", "/app/%2f", "/app/%2f", "/app/"},
		{"/app%2f/", "/app%2f/", "/app%2f/", "/app%2f/", "/app/"},
		{"/xyz%30..//abc", "/xyz%30..//abc", "/xyz0..//abc", "/xyz0../abc", "/xyz0../abc"},
		{"/app/%2E./admin", "/app/%2E./admin", "/admin", "/admin", "/admin"},
		{`/app\admin`, `/app\admin`, "/app/admin", "/app/admin", "/app/admin"},
		{`/app/\/\/\admin`, `/app/\/\/\admin`, "/app//////admin", "/app/admin", "/app/admin"},
		{"/%2Fapp%5cadmin%5Cabc", "/%2Fapp%5cadmin%5Cabc", "/%2Fapp%5cadmin%5Cabc", "/%2Fapp%5cadmin%5Cabc", "/app/admin/abc"},
		{`/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`, `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`, "/app/admin/abc"},
		{"/app//../admin", "/app//../admin", "/app/admin", "/app/admin", "/app/admin"},
		{"/app//../../admin", "/app//../../admin", "/admin", "/admin", "/admin"},
		{"/%c0%2e%c0%2e/admin", "/%c0%2e%c0%2e/admin", "/%c0.%c0./admin", "/%c0.%c0./admin", "/%c0.%c0./admin"},
		{"/%c0%2fadmin", "/%c0%2fadmin", "/%c0%2fadmin", "/%c0%2fadmin", "/%c0/admin"},
		// Not normalized by any setting: no double decoding, no case folding, no path parameters.
		{"/%252e%252e/admin", "/%252e%252e/admin", "/%252e%252e/admin", "/%252e%252e/admin", "/%252e%252e/admin"},
		{"/%252e%252e%252fadmin", "/%252e%252e%252fadmin", "/%252e%252e%252fadmin", "/%252e%252e%252fadmin", "/%252e%252e%252fadmin"},
		{"/.../admin", "/.../admin", "/.../admin", "/.../admin", "/.../admin"},
		{"/..;/admin", "/..;/admin", "/..;/admin", "/..;/admin", "/..;/admin"},
		{"/admin;a=b/xyz", "/admin;a=b/xyz", "/admin;a=b/xyz", "/admin;a=b/xyz", "/admin;a=b/xyz"},
		{"/ADMIN", "/ADMIN", "/ADMIN", "/ADMIN", "/ADMIN"},
		// RFC 3986 5.2.4 at the edges.
		{"/..", "/..", "/", "/", "/"},
		{"/a/.", "/a/.", "/a/", "/a/", "/a/"},
		{"/a/b/..", "/a/b/..", "/a/", "/a/", "/a/"},
		{"/../../a", "/../../a", "/a", "/a", "/a"},
		{"/.hidden/x", "/.hidden/x", "/.hidden/x", "/.hidden/x", "/.hidden/x"},
		{"*", "*", "*", "*", "*"},
	} {
		for _, s := range []struct {
			name string
			o    Options
			want string
		}{{"NONE", none, tc.none}, {"BASE", base, tc.base}, {"MERGE_SLASHES", mergeOnly, tc.merge}, {"DECODE_AND_MERGE_SLASHES", decodeMerge, tc.decode}} {
			got, act := s.o.Apply(tc.in)
			if got != s.want || act != Forward {
				t.Errorf("%s: %q → %q (action %d); want %q forwarded", s.name, tc.in, got, act, s.want)
			}
		}
	}
}

// TestPercentEncoded: under DECODE_AND_MERGE_SLASHES, %01 to %ff after
// /admin: the unreserved characters and the slashes are decoded (a
// backslash becomes a slash), every other escape stays as written.
func TestPercentEncoded(t *testing.T) {
	for i := 1; i <= 0xff; i++ {
		in := fmt.Sprintf("/admin%%%.2x", i)
		want := in
		c := byte(i)
		switch {
		case c == '/' || c == '\\':
			want = "/admin/"
		case isUnreserved(c):
			want, _ = url.PathUnescape(in)
		}
		if got, act := decodeMerge.Apply(in); got != want || act != Forward {
			t.Errorf("%q → %q (%d); want %q", in, got, act, want)
		}
	}
}

func TestRejected(t *testing.T) {
	for _, tc := range []struct {
		o  Options
		in string
	}{
		{base, "/admin%00"},
		{decodeMerge, "/admin%00"},
		{base, "/a%zz"},
		{base, "/a%2"},
		{base, "/a%"},
		{base, "/a\x00b"},
		{Options{EscapedSlashes: RejectEscapedSlashes}, "/a%2Fb"},
		{Options{EscapedSlashes: RejectEscapedSlashes, Normalize: true}, "/a%5cb"},
	} {
		if _, act := tc.o.Apply(tc.in); act != Reject {
			t.Errorf("%+v %q: action %d; want Reject", tc.o, tc.in, act)
		}
	}
	// NONE leaves even a malformed escape to the codec.
	if got, act := none.Apply("/a%zz"); act != Forward || got != "/a%zz" {
		t.Errorf("NONE /a%%zz: %q %d", got, act)
	}
}

func TestRedirect(t *testing.T) {
	o := Options{Normalize: true, MergeSlashes: true, EscapedSlashes: RedirectEscapedSlashes}
	if got, act := o.Apply("/a%2F%2Fb/../c"); got != "/a/c" || act != Redirect {
		t.Errorf("got %q %d; want /a/c redirected", got, act)
	}
	if got, act := o.Apply("/a//b"); got != "/a/b" || act != Forward {
		t.Errorf("got %q %d; want /a/b forwarded (no escaped slash, nothing to redirect)", got, act)
	}
}

// TestUnchangedAllocatesNothing: the common path costs no allocation.
func TestUnchangedAllocatesNothing(t *testing.T) {
	for _, p := range []string{"/", "/productpage", "/api/v1/reviews/0?x=1", "/static/app.v2.js"} {
		if n := testing.AllocsPerRun(100, func() { decodeMerge.Apply(p) }); n != 0 {
			t.Errorf("%q: %v allocations", p, n)
		}
	}
}

// FuzzApply: for any path and any options, Apply never panics, and what it
// forwards is normalized for good: applying it again changes nothing, no
// dot segment or backslash is left under normalize_path, no double slash
// under merge_slashes, no escaped slash when they are unescaped.
func FuzzApply(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//admin", "/%2Fadmin", `/a\..\admin`, "/%2e%2e/admin", "/a%2f..%2fb", "/x#y", "/%00", "/a%zz", "/a/./b/../../c"} {
		f.Add(s, uint8(7))
	}
	f.Fuzz(func(t *testing.T, p string, bits uint8) {
		o := Options{Normalize: bits&1 != 0, MergeSlashes: bits&2 != 0, EscapedSlashes: EscapedSlashes(bits>>2) % 4}
		got, act := o.Apply(p)
		if act != Forward && act != Redirect {
			return
		}
		if strings.Contains(got, "#") {
			t.Fatalf("%q → %q keeps a fragment", p, got)
		}
		if got == "" || got[0] != '/' {
			return
		}
		o2 := o
		if o2.EscapedSlashes == RedirectEscapedSlashes {
			o2.EscapedSlashes = UnescapeSlashes // the redirected request comes back with the new path
		}
		if again, act2 := o2.Apply(got); again != got || act2 != Forward {
			t.Fatalf("%+v: %q → %q → %q (%d): not stable", o, p, got, again, act2)
		}
		if o.Normalize {
			if strings.ContainsRune(got, '\\') {
				t.Fatalf("%q → %q keeps a backslash", p, got)
			}
			for _, seg := range strings.Split(got[1:], "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("%q → %q keeps a dot segment", p, got)
				}
			}
		}
		if o.MergeSlashes && strings.Contains(got, "//") {
			t.Fatalf("%q → %q keeps a double slash", p, got)
		}
		if o.EscapedSlashes == UnescapeSlashes && o.Normalize && hasEscapedSlash(got) {
			t.Fatalf("%q → %q keeps an escaped slash", p, got)
		}
	})
}
