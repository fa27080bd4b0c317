package model

import (
	"google.golang.org/protobuf/types/known/structpb"
	"reflect"
	"strings"
	"testing"
)

func TestParseNodeID(t *testing.T) {
	p, err := ParseNodeID("sidecar~198.18.0.5~reviews-v1-abc.default~default.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != SidecarProxy || p.IP != "198.18.0.5" || p.PodName != "reviews-v1-abc" || p.Namespace != "default" {
		t.Errorf("parsed %+v", p)
	}
	for in, want := range map[string]string{
		"sidecar~1.2.3.4~pod":                   "want 4 parts",
		"waypoint~1.2.3.4~p.ns~ns.svc.x":        `type "waypoint"`,
		"router~not-an-ip~p.ns~ns.svc.x":        "not an IP",
		"sidecar~1.2.3.4~podwithoutns~ns.svc.x": "want pod.namespace",
	} {
		if _, err := ParseNodeID(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", in, err, want)
		}
	}
}

func FuzzParseNodeID(f *testing.F) {
	f.Add("sidecar~198.18.0.5~reviews-v1-abc.default~default.svc.cluster.local")
	f.Add("router~::1~gw.mesh-system~mesh-system.svc.cluster.local")
	f.Add("~~~")
	f.Fuzz(func(t *testing.T, id string) {
		p, err := ParseNodeID(id)
		if err != nil {
			return
		}
		if again, err := ParseNodeID(NodeID(p.Type, p.IP, p.PodName, p.Namespace)); err != nil || !reflect.DeepEqual(*again, Proxy{ID: again.ID, Type: p.Type, IP: p.IP, PodName: p.PodName, Namespace: p.Namespace}) {
			t.Errorf("round trip of %q failed: %v", id, err)
		}
	})
}

// Node metadata comes from any client on the plaintext port: whatever the
// values, parsing returns an error or a metadata value, never panics, and
// an accepted interception mode is one Istio names.
func FuzzParseNodeMetadata(f *testing.F) {
	f.Add("1.24.2", "TPROXY", "app,helper", `[{"name":"http","containerPort":8080}]`)
	f.Add("", "", "", "")
	f.Add("x", "NONE", ",,", `[{"containerPort":-1}]`)
	f.Fuzz(func(t *testing.T, version, mode, apps, ports string) {
		md, err := structpb.NewStruct(map[string]any{"ISTIO_VERSION": version, "INTERCEPTION_MODE": mode, "APP_CONTAINERS": apps, "POD_PORTS": ports})
		if err != nil {
			return // not valid UTF-8
		}
		m, err := ParseNodeMetadata(md)
		if err == nil && !interceptionModes[m.InterceptionMode] {
			t.Errorf("accepted interception mode %q", m.InterceptionMode)
		}
	})
}
