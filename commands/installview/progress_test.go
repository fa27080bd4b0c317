package installview

import (
	"bytes"
	"errors"
	"testing"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

func TestTitle(t *testing.T) {
	for in, want := range map[string]string{
		"base":                                "Base",
		"pilot":                               "Pilot",
		"ingress-gateway.mesh-ingressgateway": "Ingress gateway mesh-ingressgateway",
	} {
		if got := Title(in); got != want {
			t.Errorf("Title(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, cli.NewColors(&out, false), false)
	res := &install.ComponentResult{Name: "pilot", Objects: []install.ObjectResult{{Action: kube.Created}, {Action: kube.Unchanged}}}
	p.Handle(install.Event{Kind: install.ComponentStarted, Component: "pilot"})
	p.Handle(install.Event{Kind: install.ComponentWaiting, Component: "pilot", Waiting: "readiness"})
	p.Handle(install.Event{Kind: install.ComponentDone, Component: "pilot", Result: res})
	p.Handle(install.Event{Kind: install.ComponentFailed, Component: "ingress-gateway.gw", Err: errors.New("boom")})
	p.Close()
	want := "  Pilot: waiting for readiness\n✔ Pilot installed (1 created, 1 unchanged)\n✘ Ingress gateway gw failed\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}
