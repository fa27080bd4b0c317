package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/manifest"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// load renders with a fixed tag so goldens do not depend on the build's version.
func load(t *testing.T, sets ...string) *spec.MeshOperator {
	t.Helper()
	op, _, err := spec.Load(spec.LoadOptions{Sets: append([]string{"tag=1.0.0"}, sets...)})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func TestGoldenProfiles(t *testing.T) {
	for _, p := range profiles.Names() {
		t.Run(p, func(t *testing.T) {
			m, err := Render(load(t, "profile="+p))
			if err != nil {
				t.Fatal(err)
			}
			b := goldenText(t, m)
			golden := filepath.Join("testdata", p+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("render of profile %s differs from %s; if the change is intended run go test ./internal/render -update", p, golden)
			}
			// Rendering twice gives the same bytes: the output is deterministic.
			m2, _ := Render(load(t, "profile="+p))
			if !bytes.Equal(b.Bytes(), goldenText(t, m2).Bytes()) {
				t.Error("two renders of the same spec differ")
			}
		})
	}
}

// goldenText prints a manifest for the golden files; CRD schemas are left
// out (internal/crdschema tests them) so the goldens show what profiles change.
func goldenText(t *testing.T, m *Manifest) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	for _, c := range m.Components {
		b.WriteString("# component: " + c.Name + "\n")
		for _, o := range c.Objects {
			if o.GetKind() == "CustomResourceDefinition" {
				o = o.DeepCopy()
				unstructured.RemoveNestedField(o.Object, "spec", "versions")
			}
			if err := manifest.WriteYAML(&b, []*unstructured.Unstructured{o}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &b
}

func TestComponentsAndOrder(t *testing.T) {
	m, err := Render(load(t, "profile=demo"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range m.Components {
		names = append(names, c.Name)
	}
	want := "base pilot ingress-gateway.mesh-ingressgateway egress-gateway.mesh-egressgateway"
	if strings.Join(names, " ") != want {
		t.Fatalf("components = %v, want %s", names, want)
	}
	all := m.Objects()
	// CRDs and the namespace come before everything else, webhooks after everything else.
	seenOther, seenWebhook := false, false
	for _, o := range all {
		switch o.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			if seenOther {
				t.Errorf("%s comes after other objects", manifest.Key(o))
			}
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			seenWebhook = true
		default:
			seenOther = true
		}
	}
	if !seenWebhook {
		t.Fatal("no webhook configurations rendered")
	}
	for _, c := range m.Components {
		objs := c.Objects
		for i, o := range objs {
			if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
				for _, later := range objs[i+1:] {
					if !strings.HasSuffix(later.GetKind(), "WebhookConfiguration") {
						t.Errorf("%s comes after webhook %s", manifest.Key(later), manifest.Key(o))
					}
				}
			}
		}
		for _, o := range objs {
			l := o.GetLabels()
			if l[LabelPartOf] != PartOf || l[LabelComponent] != c.Name || l[LabelRevision] != "default" {
				t.Errorf("%s labels = %v, want part-of=mesh component=%s rev=default", manifest.Key(o), l, c.Name)
			}
		}
	}
	crds := 0
	for _, o := range all {
		if o.GetKind() == "CustomResourceDefinition" {
			crds++
		}
	}
	if crds != 22 {
		t.Errorf("%d CRDs, want 10 Istio CRDs, MetaRoute, MeshOperator and the Gateway API's 10 (standard channel)", crds)
	}
}

func find(t *testing.T, m *Manifest, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range m.Objects() {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func TestPilotContract(t *testing.T) {
	m, err := Render(load(t))
	if err != nil {
		t.Fatal(err)
	}
	svc := find(t, m, "Service", "mesh-pilot")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	got := map[string]string{}
	for _, p := range ports {
		pm := p.(map[string]any)
		got[pm["name"].(string)] = strings.TrimSpace(strings.Join([]string{toS(pm["port"]), toS(pm["targetPort"])}, "->"))
	}
	want := map[string]string{"grpc-xds": "15010->15010", "https-dds": "15012->15012", "http-monitoring": "15014->15014", "https-webhook": "443->15017"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("pilot service port %s = %q, want %s", k, got[k], v)
		}
	}
	dep := find(t, m, "Deployment", "mesh-pilot")
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]any)["image"]; img != "mesh.dev/mesh-pilot:1.0.0" {
		t.Errorf("pilot image = %v", img)
	}
	inj := find(t, m, "ConfigMap", "mesh-sidecar-injector")
	if v, _, _ := unstructured.NestedString(inj.Object, "data", "values"); !strings.Contains(v, "proxyImage: mesh.dev/mesh-proxy:1.0.0") || !strings.Contains(v, "logLevel: warn\n") {
		t.Errorf("injector values = %s", v)
	}
	mw := find(t, m, "MutatingWebhookConfiguration", "mesh-sidecar-injector")
	hooks, _, _ := unstructured.NestedSlice(mw.Object, "webhooks")
	var labels []string
	for _, h := range hooks {
		hm := h.(map[string]any)
		svcName, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "name")
		if svcName != "mesh-pilot" {
			t.Errorf("webhook %v points at service %q", hm["name"], svcName)
		}
		exprs, _, _ := unstructured.NestedSlice(hm, "namespaceSelector", "matchExpressions")
		labels = append(labels, exprs[0].(map[string]any)["key"].(string))
		obj, _, _ := unstructured.NestedSlice(hm, "objectSelector", "matchExpressions")
		if obj[0].(map[string]any)["key"] != "sidecar.mesh.io/inject" {
			t.Errorf("webhook %v does not let pods opt out with sidecar.mesh.io/inject", hm["name"])
		}
	}
	if strings.Join(labels, ",") != "mesh-injection,istio-injection" {
		t.Errorf("injection selects namespaces on %v, want mesh-injection and istio-injection", labels)
	}

	rev, err := Render(load(t, "revision=canary"))
	if err != nil {
		t.Fatal(err)
	}
	find(t, rev, "Service", "mesh-pilot-canary")
	rmw := find(t, rev, "MutatingWebhookConfiguration", "mesh-sidecar-injector-canary")
	sel, _, _ := unstructured.NestedSlice(rmw.Object, "webhooks")
	exprs, _, _ := unstructured.NestedSlice(sel[0].(map[string]any), "namespaceSelector", "matchExpressions")
	if e := exprs[0].(map[string]any); e["key"] != "mesh.io/rev" || e["values"].([]any)[0] != "canary" {
		t.Errorf("revisioned injection selector = %v, want mesh.io/rev=canary", e)
	}
	for _, o := range rev.Objects() {
		if o.GetLabels()[LabelRevision] != "canary" {
			t.Errorf("%s is not labelled mesh.io/rev=canary", manifest.Key(o))
		}
	}
}

func toS(v any) string { return fmt.Sprint(v) }

// TestHelmLint runs Helm's linter on each chart, with its own defaults and
// with the values each profile gives it.
func TestHelmLint(t *testing.T) {
	lintChart := func(t *testing.T, name string, values map[string]any) {
		dir := filepath.Join("..", "..", "manifests", "charts", name)
		linter := lint.All(dir, values, "mesh-system", false)
		for _, msg := range linter.Messages {
			if msg.Severity > support.InfoSev {
				t.Errorf("helm lint %s: %s", name, msg)
			}
		}
	}
	for _, name := range []string{"base", "pilot", "gateways"} {
		t.Run(name+"/defaults", func(t *testing.T) { lintChart(t, name, nil) })
	}
	for _, p := range profiles.Names() {
		for _, in := range Inputs(load(t, "profile="+p, "revision=canary")) {
			t.Run(p+"/"+in.Component, func(t *testing.T) { lintChart(t, in.Chart, in.Values) })
		}
	}
}

// TestHelmTemplateMatches checks that each chart, given the values a
// profile produces, renders through Helm's own install action (what `helm
// template` runs) to exactly the objects `manifest generate` prints.
func TestHelmTemplateMatches(t *testing.T) {
	for _, p := range profiles.Names() {
		for _, in := range Inputs(load(t, "profile="+p)) {
			t.Run(p+"/"+in.Component, func(t *testing.T) {
				ch, err := loader.LoadDir(filepath.Join("..", "..", "manifests", "charts", in.Chart))
				if err != nil {
					t.Fatal(err)
				}
				inst := action.NewInstall(&action.Configuration{})
				inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
				inst.ReleaseName, inst.Namespace = "mesh", "mesh-system"
				rel, err := inst.Run(ch, in.Values)
				if err != nil {
					t.Fatal(err)
				}
				helmObjs, err := manifest.Parse("helm template", []byte(rel.Manifest))
				if err != nil {
					t.Fatal(err)
				}
				ours, err := RenderChart(in.Chart, in.Values)
				if err != nil {
					t.Fatal(err)
				}
				d, err := manifest.Compare(helmObjs, ours)
				if err != nil {
					t.Fatal(err)
				}
				if !d.Empty() {
					t.Errorf("helm template and mesh differ: added %v removed %v changed %v", d.Added, d.Removed, d.Changed)
				}
				if len(ours) == 0 {
					t.Error("no objects rendered")
				}
			})
		}
	}
}

// values.pilot.rollout (the mesh-wide rollout default) reaches pilot as
// its --rollout-* flags, and only when set.
func TestRolloutDefaultFlags(t *testing.T) {
	args := func(sets ...string) string {
		m, err := Render(load(t, sets...))
		if err != nil {
			t.Fatal(err)
		}
		dep := find(t, m, "Deployment", "mesh-pilot")
		containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
		a, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		return strings.Join(a, " ")
	}
	if a := args(); strings.Contains(a, "--rollout") {
		t.Errorf("no default set, pilot args %q carry a rollout flag", a)
	}
	a := args("values.pilot.rollout.stages=10,50,100", "values.pilot.rollout.interval=60s", "values.pilot.rollout.maxLatencyIncrease=1.5")
	for _, want := range []string{"--rollout-stages=10,50,100", "--rollout-interval=60s", "--rollout-max-latency-increase=1.5"} {
		if !strings.Contains(a, want) {
			t.Errorf("pilot args %q lack %s", a, want)
		}
	}
	if strings.Contains(a, "--rollout-max-5xx-ratio") {
		t.Errorf("pilot args %q set the 5xx gate, which was not set", a)
	}
}

// values.pilot.jwksFetchMode reaches pilot as --jwks-fetch-mode, and only
// when set (pilot then reads PILOT_JWT_ENABLE_REMOTE_JWKS from
// values.pilot.env, else keeps Istio's default, istiod).
func TestJWKSFetchModeFlag(t *testing.T) {
	args := func(sets ...string) string {
		m, err := Render(load(t, sets...))
		if err != nil {
			t.Fatal(err)
		}
		dep := find(t, m, "Deployment", "mesh-pilot")
		containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
		a, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		return strings.Join(a, " ")
	}
	if a := args(); strings.Contains(a, "--jwks-fetch-mode") {
		t.Errorf("not set, pilot args %q carry --jwks-fetch-mode", a)
	}
	if a := args("values.pilot.jwksFetchMode=hybrid"); !strings.Contains(a, "--jwks-fetch-mode=hybrid") {
		t.Errorf("pilot args %q lack --jwks-fetch-mode=hybrid", a)
	}
}

// The Secrets pilot may read follow values.pilot.gatewaySecretNamespaces:
// by default its own namespace's (the pilot chart's Role) and those of the
// gateway components and the list, each through a Role of its own, and
// no cluster-wide rule; ["*"] is the ClusterRole rule and no Roles. The
// objects that grant Secrets and pilot's flag are kept in goldens.
func TestGatewaySecretsRBAC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sets  []string
		flag  string
		roles []string // namespaces with a mesh-pilot-gateway-secrets Role
		all   bool     // the ClusterRole grants Secrets
		// binds: pilot may bind ClusterRole mesh-pilot-gateway-secrets
		// (and no other) where gateways are.
		binds bool
	}{
		{"default", nil, "--gateway-secret-namespaces=mesh-system", nil, false, true},
		{"listed", []string{"profile=demo", "components.ingressGateways[0].namespace=edge", "values.pilot.gatewaySecretNamespaces=[team-a, team-b, mesh-system]"},
			"--gateway-secret-namespaces=mesh-system,edge,team-a,team-b", []string{"edge", "team-a", "team-b"}, false, true},
		{"all", []string{"profile=demo", `values.pilot.gatewaySecretNamespaces=["*"]`}, "--gateway-secret-namespaces=*", nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Render(load(t, tc.sets...))
			if err != nil {
				t.Fatal(err)
			}
			var granting []*unstructured.Unstructured
			var roles []string
			all, binds := false, ""
			for _, o := range m.Objects() {
				if strings.HasSuffix(o.GetName(), "-gateway-secrets") {
					granting = append(granting, o)
					if o.GetKind() == "Role" {
						roles = append(roles, o.GetNamespace())
					}
				}
				if o.GetKind() == "ClusterRole" && o.GetName() == "mesh-pilot" {
					rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
					for _, r := range rules {
						res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
						if strings.Contains(" "+strings.Join(res, " ")+" ", " secrets ") {
							all = true
							granting = append(granting, o)
						}
						verbs, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "verbs")
						if slices.Contains(verbs, "bind") || slices.Contains(verbs, "escalate") || slices.Contains(verbs, "*") {
							names, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resourceNames")
							binds += strings.Join(res, ",") + "/" + strings.Join(names, ",") + " "
						}
					}
				}
			}
			if strings.Join(roles, " ") != strings.Join(tc.roles, " ") {
				t.Errorf("gateway-secrets Roles in %v, want %v", roles, tc.roles)
			}
			if all != tc.all {
				t.Errorf("the ClusterRole grants Secrets: %v, want %v", all, tc.all)
			}
			if want := map[bool]string{true: "clusterroles/mesh-pilot-gateway-secrets "}[tc.binds]; binds != want {
				t.Errorf("pilot may bind %q, want %q", binds, want)
			}
			dep := find(t, m, "Deployment", "mesh-pilot")
			containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			if !strings.Contains(" "+strings.Join(args, " ")+" ", " "+tc.flag+" ") {
				t.Errorf("pilot args %v, want %s", args, tc.flag)
			}
			var b bytes.Buffer
			b.WriteString("# pilot: " + tc.flag + "\n")
			if err := manifest.WriteYAML(&b, granting); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "gateway-secrets-"+tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("the objects granting Secrets differ from %s; if the change is intended run go test ./internal/render -update", golden)
			}
		})
	}
}
