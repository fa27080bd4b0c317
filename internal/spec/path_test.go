package spec

import (
	"strings"
	"testing"
)

func TestParseSet(t *testing.T) {
	tests := []struct {
		arg      string
		wantPath string
		wantVal  string
		wantErr  string
	}{
		{arg: "profile=demo", wantPath: "profile", wantVal: "demo"},
		{arg: "components.ingressGateways[name:mesh-ingressgateway].enabled=false", wantPath: "components.ingressGateways[name:mesh-ingressgateway].enabled", wantVal: "false"},
		{arg: "components.egressGateways[0].k8s.replicaCount=2", wantPath: "components.egressGateways[0].k8s.replicaCount", wantVal: "2"},
		{arg: `values.pilot.podAnnotations.prometheus\.io/scrape=true`, wantPath: `values.pilot.podAnnotations.prometheus\.io/scrape`, wantVal: "true"},
		{arg: "meshConfig.defaultConfig.proxyMetadata.A=b=c", wantPath: "meshConfig.defaultConfig.proxyMetadata.A", wantVal: "b=c"},
		{arg: "components.ingressGateways[name:a=b].enabled=true", wantPath: "components.ingressGateways[name:a=b].enabled", wantVal: "true"},
		{arg: "profile", wantErr: "no '='"},
		{arg: "=x", wantErr: "empty path"},
		{arg: "a..b=1", wantErr: "empty key"},
		{arg: "a[x=1", wantErr: "not closed"},
		{arg: "a[-1]=1", wantErr: "list index"},
		{arg: "a[name:]=1", wantErr: "[key:value]"},
		{arg: "[0]=1", wantErr: "starts with a list selector"},
		{arg: "a]b=1", wantErr: "unexpected ']'"},
		{arg: "a[0]b=1", wantErr: "expected '.' or '['"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			p, v, err := ParseSet(tt.arg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSet(%q) error = %v, want it to mention %q", tt.arg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSet(%q): %v", tt.arg, err)
			}
			if p.String() != tt.wantPath || v != tt.wantVal {
				t.Errorf("ParseSet(%q) = %q, %q; want %q, %q", tt.arg, p.String(), v, tt.wantPath, tt.wantVal)
			}
		})
	}
}

// FuzzParseSet checks that any --set argument either fails cleanly or
// yields a path that prints back to something that parses to the same path.
func FuzzParseSet(f *testing.F) {
	for _, s := range []string{
		"profile=demo", "components.ingressGateways[name:x].enabled=false", "a[0].b[1]=2",
		`values.a\.b.c=1`, "a[=", "[", "a.b.", "x[name:y]z=1", "=", `\`, "a[0]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		p, _, err := ParseSet(arg)
		if err != nil {
			return
		}
		again, err := ParsePath(p.String())
		if err != nil {
			t.Fatalf("path %q from %q does not parse again: %v", p.String(), arg, err)
		}
		if again.String() != p.String() {
			t.Fatalf("path %q reparsed as %q", p.String(), again.String())
		}
		_, _ = lookup(p) // must not panic on any path
	})
}
