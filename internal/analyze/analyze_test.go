package analyze

import "testing"

func TestResolveHost(t *testing.T) {
	for in, want := range map[string]string{
		"reviews":                        "reviews.default.svc.cluster.local",
		"reviews.prod":                   "reviews.prod.svc.cluster.local",
		"reviews.prod.svc":               "reviews.prod.svc.cluster.local",
		"reviews.prod.svc.cluster.local": "reviews.prod.svc.cluster.local",
		"api.example.com":                "api.example.com",
		"*.example.com":                  "*.example.com",
	} {
		if got := ResolveHost(in, "default"); got != want {
			t.Errorf("ResolveHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostMatches(t *testing.T) {
	cases := []struct {
		pattern, host string
		want          bool
	}{
		{"*", "a.b", true}, {"*.example.com", "api.example.com", true}, {"*.example.com", "example.com", false},
		{"a.b", "a.b", true}, {"a.b", "a.c", false},
	}
	for _, c := range cases {
		if got := HostMatches(c.pattern, c.host); got != c.want {
			t.Errorf("HostMatches(%q, %q) = %v", c.pattern, c.host, got)
		}
	}
}

func TestParseSuppression(t *testing.T) {
	for _, bad := range []string{"IST0101", "=Pod a.b", "IST0101=", "IST0101=Pod", "IST[=Pod a.b"} {
		if _, err := ParseSuppression(bad); err == nil {
			t.Errorf("ParseSuppression(%q) accepted", bad)
		}
	}
	s, err := ParseSuppression("IST0103 = Pod *.default")
	if err != nil || s.Code != "IST0103" || s.Resource != "Pod *.default" {
		t.Errorf("got %+v, %v", s, err)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"info": Info, "Warning": Warning, "ERROR": Error} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("fatal"); err == nil {
		t.Error("ParseLevel accepted fatal")
	}
}
