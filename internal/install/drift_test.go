package install

import (
	"testing"

	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const renderedDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mesh-pilot
  namespace: mesh-system
  labels: {app: mesh-pilot}
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: discovery
        image: mesh.dev/mesh-pilot:1.0
        ports: [{containerPort: 15010}]
        resources: {requests: {cpu: 500m, memory: 1Gi}}
`

func TestDriftIgnoresServerDefaults(t *testing.T) {
	want := obj(t, renderedDeployment)
	live := obj(t, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mesh-pilot
  namespace: mesh-system
  uid: 1234
  resourceVersion: "99"
  generation: 3
  labels: {app: mesh-pilot}
  annotations: {deployment.kubernetes.io/revision: "1"}
spec:
  replicas: 1
  progressDeadlineSeconds: 600
  strategy: {type: RollingUpdate}
  template:
    spec:
      restartPolicy: Always
      dnsPolicy: ClusterFirst
      containers:
      - name: discovery
        image: mesh.dev/mesh-pilot:1.0
        imagePullPolicy: IfNotPresent
        terminationMessagePath: /dev/termination-log
        ports: [{containerPort: 15010, protocol: TCP}]
        resources: {requests: {cpu: "0.5", memory: 1Gi}}
status: {availableReplicas: 1}
`)
	if d := Drift(want, live); len(d) != 0 {
		t.Fatalf("server defaults counted as drift: %+v", d)
	}
}

func TestDriftFindsChangedFields(t *testing.T) {
	want := obj(t, renderedDeployment)
	live := obj(t, renderedDeployment)
	live["spec"].(map[string]any)["replicas"] = int64(3)
	c := live["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	c["image"] = "evil.example/pilot:latest"
	delete(live["metadata"].(map[string]any), "labels")
	got := Drift(want, live)
	paths := map[string]bool{}
	for _, d := range got {
		paths[d.Path] = true
	}
	for _, p := range []string{"spec.replicas", "spec.template.spec.containers[name=discovery].image", "metadata.labels"} {
		if !paths[p] {
			t.Errorf("drift at %s not reported; got %+v", p, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("want 3 drifted fields, got %d: %+v", len(got), got)
	}
}

func TestDriftMissingNamedItem(t *testing.T) {
	want := obj(t, renderedDeployment)
	live := obj(t, renderedDeployment)
	live["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["name"] = "other"
	got := Drift(want, live)
	if len(got) != 1 || got[0].Path != "spec.template.spec.containers[name=discovery]" {
		t.Fatalf("want the missing container named, got %+v", got)
	}
}

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		from, to string
		kind     string
		refuse   bool
	}{
		{"1.2.3", "1.2.4", "upgrade", false},
		{"1.2.3", "1.3.0", "upgrade", false},
		{"1.2.3", "1.4.0", "upgrade", true},
		{"1.3.0", "1.2.9", "downgrade", true},
		{"v1.3.0", "1.3.0", "same", false},
		{"1.9.0", "2.0.0", "upgrade", true},
		{"0.0.0-dev", "0.0.0-dev", "same", false},
		{"abc1234", "1.2.0", "unknown", false},
	}
	for _, c := range cases {
		ch := CompareVersions(c.from, c.to)
		if ch.Kind != c.kind {
			t.Errorf("%s → %s: kind %s, want %s", c.from, c.to, ch.Kind, c.kind)
		}
		err := CheckVersionChange(ch, false)
		if (err != nil) != c.refuse {
			t.Errorf("%s → %s: refused=%v (%v), want %v", c.from, c.to, err != nil, err, c.refuse)
		}
		if err := CheckVersionChange(ch, true); err != nil {
			t.Errorf("%s → %s with force: %v", c.from, c.to, err)
		}
	}
}
