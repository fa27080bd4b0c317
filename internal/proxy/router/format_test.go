package router

import (
	"strings"
	"testing"
)

func TestHeaderFormatter(t *testing.T) {
	parts, err := compileFormat("peer=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% id=%REQ(x-user)% 100%%", "v")
	if err != nil {
		t.Fatal(err)
	}
	got := render(parts, &Vars{Remote: "198.18.0.5:4321", Req: map[string][]string{"X-User": {"ann"}}})
	if got != "peer=198.18.0.5 id=ann 100%" {
		t.Fatalf("render = %q", got)
	}
	if _, err := compileFormat("%UPSTREAM_METADATA(x)%", "route.request_headers_to_add[0].header.value"); err == nil ||
		!strings.Contains(err.Error(), "UPSTREAM_METADATA") || !strings.Contains(err.Error(), "request_headers_to_add[0]") {
		t.Fatalf("unsupported formatter error %v should name the field and the formatter", err)
	}
}

func FuzzCompileFormat(f *testing.F) {
	for _, s := range []string{"plain", "%HOSTNAME%", "a%%b", "%REQ(x)%-%PROTOCOL%", "%", "%UNKNOWN%", "%REQ(%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts, err := compileFormat(s, "f")
		if err != nil {
			return
		}
		render(parts, &Vars{Remote: "1.2.3.4:5", Req: map[string][]string{}})
		if !strings.Contains(s, "%") && render(parts, &Vars{}) != s {
			t.Fatalf("literal %q rendered differently", s)
		}
	})
}
