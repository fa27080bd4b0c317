package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gateway(t *testing.T, gws []GatewaySpec, name string) GatewaySpec {
	t.Helper()
	for _, g := range gws {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no gateway %q in %v", name, gws)
	return GatewaySpec{}
}

func TestLoadProfiles(t *testing.T) {
	for _, tt := range []struct {
		profile                string
		pilot, ingress, egress bool
	}{
		{"default", true, true, false},
		{"demo", true, true, true},
		{"minimal", true, false, false},
		{"empty", false, false, false},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			op, _, err := Load(LoadOptions{Sets: []string{"profile=" + tt.profile}})
			if err != nil {
				t.Fatal(err)
			}
			c := op.Spec.Components
			ing := gateway(t, c.IngressGateways, "mesh-ingressgateway")
			eg := gateway(t, c.EgressGateways, "mesh-egressgateway")
			if c.Pilot.IsEnabled() != tt.pilot || ing.IsEnabled() != tt.ingress || eg.IsEnabled() != tt.egress {
				t.Errorf("pilot/ingress/egress = %v/%v/%v, want %v/%v/%v", c.Pilot.IsEnabled(), ing.IsEnabled(), eg.IsEnabled(), tt.pilot, tt.ingress, tt.egress)
			}
			if op.Spec.Profile != tt.profile || op.Spec.Hub != DefaultHub || op.Spec.Namespace != DefaultNamespace || op.Spec.Tag == "" {
				t.Errorf("profile/hub/namespace/tag = %q/%q/%q/%q", op.Spec.Profile, op.Spec.Hub, op.Spec.Namespace, op.Spec.Tag)
			}
		})
	}
	op, _, err := Load(LoadOptions{})
	if err != nil || op.Spec.Profile != "default" {
		t.Fatalf("no profile given: got %v, %v; want default", op, err)
	}
	demo, _, _ := Load(LoadOptions{Sets: []string{"profile=demo"}})
	if demo.Spec.MeshConfig["accessLogFile"] != "/dev/stdout" {
		t.Errorf("demo access log = %v, want /dev/stdout", demo.Spec.MeshConfig["accessLogFile"])
	}
}

func TestLoadPrecedence(t *testing.T) {
	f1 := writeFile(t, "one.yaml", `apiVersion: install.mesh.io/v1alpha1
kind: MeshOperator
spec:
  profile: demo
  hub: file-one
  tag: "1.0"
  components:
    ingressGateways:
    - name: mesh-ingressgateway
      k8s:
        replicaCount: 2
`)
	f2 := writeFile(t, "two.yaml", `kind: MeshOperator
spec:
  hub: file-two
  components:
    ingressGateways:
    - name: extra-gateway
      enabled: true
`)
	op, _, err := Load(LoadOptions{Files: []string{f1, f2}, Sets: []string{
		"tag=1.20",
		"components.ingressGateways[name:mesh-ingressgateway].k8s.replicaCount=3",
		"components.egressGateways[0].enabled=false",
		"values.global.proxy.logLevel=debug",
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := op.Spec
	if s.Profile != "demo" {
		t.Errorf("profile = %q, want demo (from the first file)", s.Profile)
	}
	if s.Hub != "file-two" {
		t.Errorf("hub = %q, want the later file's file-two", s.Hub)
	}
	if s.Tag != "1.20" {
		t.Errorf("tag = %q, want the string 1.20 from --set (not the number 1.2)", s.Tag)
	}
	ing := gateway(t, s.Components.IngressGateways, "mesh-ingressgateway")
	if ing.K8s == nil || ing.K8s.ReplicaCount == nil || *ing.K8s.ReplicaCount != 3 {
		t.Errorf("ingress replicaCount = %+v, want 3 from --set over 2 from the file", ing.K8s)
	}
	if ing.K8s.Service == nil || len(ing.K8s.Service.Ports) == 0 {
		t.Errorf("the profile's ingress service ports were lost by merging the overlay: %+v", ing.K8s)
	}
	if !gateway(t, s.Components.IngressGateways, "extra-gateway").IsEnabled() {
		t.Error("the second file's extra gateway is missing or off")
	}
	if gateway(t, s.Components.EgressGateways, "mesh-egressgateway").IsEnabled() {
		t.Error("--set components.egressGateways[0].enabled=false did not switch the demo egress gateway off")
	}
	if got := s.Values["global"].(map[string]any)["proxy"].(map[string]any)["logLevel"]; got != "debug" {
		t.Errorf("values.global.proxy.logLevel = %v, want debug", got)
	}

	rev, _, err := Load(LoadOptions{Sets: []string{"revision=from-set"}, Revision: "canary"})
	if err != nil || rev.Spec.Revision != "canary" || rev.RevisionLabel() != "canary" || rev.Name != "mesh-canary" {
		t.Errorf("--revision canary: got %+v, %v", rev, err)
	}
}

func TestLoadTypedValues(t *testing.T) {
	op, _, err := Load(LoadOptions{Sets: []string{
		"components.pilot.k8s.hpaSpec.maxReplicas=7",
		"meshConfig.enableTracing=true",
		"meshConfig.defaultConfig.tracing.sampling=12.5",
		`meshConfig.trustDomain="123"`,
		"values.pilot.env={FOO: bar}",
		"components.pilot.k8s.nodeSelector.zone=1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if *op.Spec.Components.Pilot.K8s.HPASpec.MaxReplicas != 7 {
		t.Error("maxReplicas not 7")
	}
	mc := op.Spec.MeshConfig
	if mc["enableTracing"] != true {
		t.Errorf("enableTracing = %#v, want bool true", mc["enableTracing"])
	}
	if got := mc["defaultConfig"].(map[string]any)["tracing"].(map[string]any)["sampling"]; got != 12.5 {
		t.Errorf("sampling = %#v, want 12.5", got)
	}
	if mc["trustDomain"] != "123" {
		t.Errorf("quoted value = %#v, want the string 123", mc["trustDomain"])
	}
	if got := op.Spec.Values["pilot"].(map[string]any)["env"]; got.(map[string]any)["FOO"] != "bar" {
		t.Errorf("values.pilot.env = %#v", got)
	}
	if op.Spec.Components.Pilot.K8s.NodeSelector["zone"] != "1" {
		t.Errorf("nodeSelector value is %q, want the string 1", op.Spec.Components.Pilot.K8s.NodeSelector["zone"])
	}
}

func TestLoadErrors(t *testing.T) {
	malformed := writeFile(t, "bad.yaml", "kind: MeshOperator\nspec:\n  hub: x\n  tag: a: b\n")
	unknownField := writeFile(t, "unknown.yaml", "kind: MeshOperator\nspec:\n  components:\n    pilot:\n      k8s:\n        replicaCont: 2\n")
	wrongType := writeFile(t, "type.yaml", "kind: MeshOperator\nspec:\n  components:\n    pilot:\n      enabled: sure\n")
	wrongKind := writeFile(t, "kind.yaml", "apiVersion: v1\nkind: ConfigMap\n")
	badProfile := writeFile(t, "profile.yaml", "kind: MeshOperator\nspec:\n  profile: tiny\n")
	rolloutGateOnly := writeFile(t, "gate.yaml", "kind: MeshOperator\nspec:\n  values:\n    pilot:\n      rollout:\n        max5xxRatio: 0.02\n")
	oldSecretNS := writeFile(t, "oldsecretns.yaml", "kind: MeshOperator\nspec:\n  values:\n    pilot:\n      gatewaySecretNamespace: \"*\"\n")
	secretNSString := writeFile(t, "secretnsstring.yaml", "kind: MeshOperator\nspec:\n  values:\n    pilot:\n      gatewaySecretNamespaces: team-a\n")
	tests := []struct {
		name    string
		opts    LoadOptions
		setErr  bool
		wantAll []string
	}{
		{"unknown profile", LoadOptions{Sets: []string{"profile=tiny"}}, true, []string{`unknown profile "tiny"`, "default, demo, empty, minimal"}},
		{"unknown path", LoadOptions{Sets: []string{"components.ingresGateways[0].enabled=false"}}, true, []string{`did you mean "components.ingressGateways"`}},
		{"unknown values path", LoadOptions{Sets: []string{"values.global.proxy.logLevl=debug"}}, true, []string{`"values.global.proxy.logLevel"`}},
		{"selector on a map", LoadOptions{Sets: []string{"components.pilot[0].enabled=true"}}, true, []string{"not a list"}},
		{"selector key", LoadOptions{Sets: []string{"components.ingressGateways[nam:x].enabled=true"}}, true, []string{`no field "nam"`, `"components.ingressGateways.name"`}},
		{"bad int", LoadOptions{Sets: []string{"components.pilot.k8s.replicaCount=two"}}, true, []string{"expected an integer"}},
		{"bad bool", LoadOptions{Sets: []string{"components.pilot.enabled=yes please"}}, true, []string{"expected true or false"}},
		{"index out of range", LoadOptions{Sets: []string{"components.ingressGateways[5].enabled=true"}}, true, []string{"out of range", "[1] to append"}},
		{"malformed file", LoadOptions{Files: []string{malformed}}, false, []string{malformed + ":4:", "invalid YAML"}},
		{"unknown field in file", LoadOptions{Files: []string{unknownField}}, false, []string{unknownField + ":6:", `did you mean "components.pilot.k8s.replicaCount"`}},
		{"wrong type in file", LoadOptions{Files: []string{wrongType}}, false, []string{wrongType + ":5:", "expected a bool"}},
		{"wrong kind", LoadOptions{Files: []string{wrongKind}}, false, []string{`kind "ConfigMap"`, "MeshOperator"}},
		{"unknown profile in file", LoadOptions{Files: []string{badProfile}}, false, []string{badProfile, `unknown profile "tiny"`}},
		{"missing file", LoadOptions{Files: []string{"/nonexistent/x.yaml"}}, false, []string{"/nonexistent/x.yaml"}},
		{"bad gateway name", LoadOptions{Sets: []string{"components.ingressGateways[name:Bad_Name].enabled=true"}}, false, []string{"Bad_Name"}},
		{"rollout default: last stage not 100", LoadOptions{Sets: []string{"values.pilot.rollout.stages=10,50", "values.pilot.rollout.interval=60s"}}, false,
			[]string{`values.pilot.rollout.stages: "10,50"`, "last stage must be 100"}},
		{"rollout default: no interval", LoadOptions{Sets: []string{"values.pilot.rollout.stages=10,100"}}, false,
			[]string{"values.pilot.rollout.interval", "missing"}},
		{"rollout default: gate without stages", LoadOptions{Files: []string{rolloutGateOnly}}, false,
			[]string{`values.pilot.rollout.max5xxRatio: "0.02": set without values.pilot.rollout.stages`}},
		{"rollout default: ratio over 1", LoadOptions{Sets: []string{"values.pilot.rollout.stages=50,100", "values.pilot.rollout.interval=1m", "values.pilot.rollout.max5xxRatio=2"}}, false,
			[]string{`values.pilot.rollout.max5xxRatio: "2"`, "between 0 and 1"}},
		{"gateway Secret namespaces: the old single value in a file", LoadOptions{Files: []string{oldSecretNS}}, false,
			[]string{oldSecretNS + ":5:", "values.pilot.gatewaySecretNamespace (one namespace", "replaced by values.pilot.gatewaySecretNamespaces, a list"}},
		{"gateway Secret namespaces: the old single value set", LoadOptions{Sets: []string{"values.pilot.gatewaySecretNamespace=team-a"}}, true,
			[]string{"replaced by values.pilot.gatewaySecretNamespaces, a list", `["*"] for every namespace`}},
		{"gateway Secret namespaces: a string, not a list", LoadOptions{Files: []string{secretNSString}}, false,
			[]string{secretNSString + ":5:", "values.pilot.gatewaySecretNamespaces", "expected a list"}},
		{"gateway Secret namespaces: not a namespace name", LoadOptions{Sets: []string{"values.pilot.gatewaySecretNamespaces=[team-a, Team_B]"}}, false,
			[]string{`values.pilot.gatewaySecretNamespaces[1] "Team_B"`, "want a namespace name"}},
		{"gateway Secret namespaces: * among others", LoadOptions{Sets: []string{`values.pilot.gatewaySecretNamespaces=["*", team-a]`}}, false,
			[]string{"values.pilot.gatewaySecretNamespaces", `"*" (every namespace) is the whole list`}},
		{"rollout default: typo", LoadOptions{Sets: []string{"values.pilot.rollout.stage=50,100"}}, true, []string{`did you mean "values.pilot.rollout.stages"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(tt.opts)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var se *SetError
			if errors.As(err, &se) != tt.setErr {
				t.Errorf("error %T (%v): is a SetError = %v, want %v", err, err, !tt.setErr, tt.setErr)
			}
			for _, w := range tt.wantAll {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestIstioOperatorOverlay(t *testing.T) {
	f := writeFile(t, "iop.yaml", `apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: my-mesh
spec:
  profile: demo
  hub: docker.io/istio
  meshConfig:
    accessLogFile: /dev/stdout
  components:
    cni:
      enabled: true
    pilot:
      k8s:
        replicaCount: 2
        affinity: {}
    ingressGateways:
    - name: istio-ingressgateway
      enabled: false
  values:
    global:
      proxy:
        logLevel: debug
      istioNamespace: istio-system
`)
	op, warns, err := Load(LoadOptions{Files: []string{f}})
	if err != nil {
		t.Fatal(err)
	}
	if op.Spec.Profile != "demo" || op.Spec.Hub != "docker.io/istio" || *op.Spec.Components.Pilot.K8s.ReplicaCount != 2 {
		t.Errorf("translated spec = %+v", op.Spec)
	}
	if gateway(t, op.Spec.Components.IngressGateways, "mesh-ingressgateway").IsEnabled() {
		t.Error("istio-ingressgateway enabled=false should switch off mesh-ingressgateway")
	}
	if op.Spec.Values["global"].(map[string]any)["proxy"].(map[string]any)["logLevel"] != "debug" {
		t.Error("values.global.proxy.logLevel not carried over")
	}
	joined := strings.Join(warns, "\n")
	for _, w := range []string{"spec.components.cni", "spec.components.pilot.k8s.affinity", "spec.values.global.istioNamespace"} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings %q do not name %s", joined, w)
		}
	}
	if !strings.HasPrefix(warns[0], f+": ") {
		t.Errorf("warning %q does not name the file", warns[0])
	}
}

// The mesh-wide rollout default is off unless set, and a good one loads
// as written (numbers in a file need no quotes).
func TestRolloutDefault(t *testing.T) {
	op, _, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := op.Spec.Values["pilot"]; r != nil {
		if _, set := r.(map[string]any)["rollout"]; set {
			t.Errorf("default profile sets values.pilot.rollout: %v; want it off unless set", r)
		}
	}
	f := writeFile(t, "rollout.yaml", "kind: MeshOperator\nspec:\n  values:\n    pilot:\n      rollout: {stages: \"10,50,100\", interval: 60s, max5xxRatio: 0.02, maxLatencyIncrease: 1.5}\n")
	op, _, err = Load(LoadOptions{Files: []string{f}})
	if err != nil {
		t.Fatalf("a good default: %v", err)
	}
	got := op.Spec.Values["pilot"].(map[string]any)["rollout"].(map[string]any)
	if got["stages"] != "10,50,100" || got["interval"] != "60s" {
		t.Errorf("values.pilot.rollout = %v", got)
	}
}
