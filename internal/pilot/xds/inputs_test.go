package xds

import (
	"reflect"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
)

// Every field of workload, what the generator reads about a proxy, has a
// row in inputKeys that either writes it into the sharing key or says why
// it need not: a field added without one would let two proxies that differ
// in it share one config.
func TestEveryProxyInputIsKeyed(t *testing.T) {
	rows := map[string]inputKey{}
	for _, k := range inputKeys {
		if _, dup := rows[k.field]; dup {
			t.Errorf("inputKeys: %s has two rows", k.field)
		}
		if (k.key == nil) == (k.why == "") {
			t.Errorf("inputKeys: %s needs either a key function or a reason, not both or neither", k.field)
		}
		rows[k.field] = k
	}
	typ := reflect.TypeOf(workload{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i).Name
		if _, ok := rows[f]; !ok {
			t.Errorf("workload.%s enters no sharing key: add its row to inputKeys (inputs.go)", f)
		}
		delete(rows, f)
	}
	for f := range rows {
		t.Errorf("inputKeys row %s names no field of workload", f)
	}
}

// Two gateway pods with the same labels whose container ports differ are
// sent a listener each on their own port: the Service's named target port
// is read from the pod, so the pod's ports are part of what they share by.
func TestGatewayPodsWithOtherPortsShareNoConfig(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: mesh-system}
spec:
  selector: {istio: edge}
  ports: [{name: http2, port: 80, targetPort: http2}]
---
apiVersion: v1
kind: Pod
metadata: {name: edge-a, namespace: mesh-system, labels: {istio: edge}}
spec: {containers: [{name: proxy, image: proxy, ports: [{name: http2, containerPort: 8080}]}]}
status: {podIP: 198.18.200.11}
---
apiVersion: v1
kind: Pod
metadata: {name: edge-b, namespace: mesh-system, labels: {istio: edge}}
spec: {containers: [{name: proxy, image: proxy, ports: [{name: http2, containerPort: 9080}]}]}
status: {podIP: 198.18.200.12}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: mesh-system}
spec:
  selector: {istio: edge}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(2, w.Input()))
	for pod, want := range map[string]string{"edge-a": "0.0.0.0_8080", "edge-b": "0.0.0.0_9080"} {
		if got := generate(t, pc, w.PodProxy(model.Router, pod)).Names(resourcev3.ListenerType); !contains(got, want) {
			t.Errorf("%s is sent listeners %v, want %s (its own container port)", pod, got, want)
		}
	}
}
