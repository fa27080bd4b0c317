package metricsmerge

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse(`{"scrape":"true","path":"/m","port":"9102"}`)
	if err != nil || *s != (Scrape{Scrape: "true", Path: "/m", Port: "9102"}) {
		t.Fatalf("Parse: %+v %v", s, err)
	}
	h := New(nil, s, "", nil)
	if u := h.AppURL(); u != "http://localhost:9102/m" {
		t.Errorf("AppURL %q", u)
	}
	if s, err := Parse(""); s != nil || err != nil {
		t.Errorf(`Parse(""): %+v %v, want nothing`, s, err)
	}
	for in, want := range map[string]string{
		`{"port":"http"}`:      `port "http"`,
		`{"port":"70000"}`:     `port "70000"`,
		`{"path":"metrics"}`:   `path "metrics"`,
		`{"scheme":"https"}`:   `unknown field "scheme"`,
		`prometheus.io/port=1`: EnvVar,
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), EnvVar) {
			t.Errorf("Parse(%s): %v, want an error naming %s and %q", in, err, EnvVar, want)
		}
	}
}
