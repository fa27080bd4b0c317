// Package peermeta is Istio's peer metadata exchange: each proxy tells the
// proxy at the other end of a request or connection which workload it
// fronts, so both can label their metrics with both sides (source_workload,
// destination_version, ...). Over HTTP the metadata travels in the
// x-envoy-peer-metadata and x-envoy-peer-metadata-id headers (the request
// carries the client's, the response the server's); over mTLS TCP
// connections that negotiated the istio-peer-exchange ALPN protocol, as a
// length-prefixed block ahead of the stream (exchange.go).
package peermeta

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Istio's header names.
const (
	HeaderMetadata = "x-envoy-peer-metadata"
	HeaderID       = "x-envoy-peer-metadata-id"
)

// Istio's canonical service labels.
const (
	CanonicalNameLabel     = "service.istio.io/canonical-name"
	CanonicalRevisionLabel = "service.istio.io/canonical-revision"
)

// maxEncoded bounds what a peer may send: node metadata is a few hundred bytes.
const maxEncoded = 16 << 10

// Node is a proxy's workload as Istio's node metadata describes it (the
// keys of Envoy's node.metadata Istio's agent writes).
type Node struct {
	ID             string // the node id, sidecar~ip~pod.ns~domain
	Name           string // NAME: the pod
	Namespace      string // NAMESPACE
	WorkloadName   string // WORKLOAD_NAME: the Deployment (or other owner) name
	Owner          string // OWNER: kubernetes://apis/apps/v1/namespaces/ns/deployments/name
	ClusterID      string // CLUSTER_ID
	MeshID         string // MESH_ID
	ServiceAccount string // SERVICE_ACCOUNT
	Labels         map[string]string

	once    sync.Once
	encoded string
}

// App is the app label, "" when none.
func (n *Node) App() string { return n.label("app") }

// Version is the version label, "" when none.
func (n *Node) Version() string { return n.label("version") }

// Workload is the workload name: WORKLOAD_NAME, else the pod name.
func (n *Node) Workload() string {
	if n == nil {
		return ""
	}
	if n.WorkloadName != "" {
		return n.WorkloadName
	}
	return n.Name
}

// CanonicalService is Istio's canonical service: its label, else
// app.kubernetes.io/name, else app, else the workload name.
func (n *Node) CanonicalService() string {
	for _, k := range []string{CanonicalNameLabel, "app.kubernetes.io/name", "app"} {
		if v := n.label(k); v != "" {
			return v
		}
	}
	return n.Workload()
}

// CanonicalRevision is Istio's canonical revision: its label, else
// app.kubernetes.io/version, else version, else "latest".
func (n *Node) CanonicalRevision() string {
	for _, k := range []string{CanonicalRevisionLabel, "app.kubernetes.io/version", "version"} {
		if v := n.label(k); v != "" {
			return v
		}
	}
	return "latest"
}

// Principal is the workload's SPIFFE identity in trustDomain, "" without a service account.
func (n *Node) Principal(trustDomain string) string {
	if n == nil || n.ServiceAccount == "" || n.Namespace == "" {
		return ""
	}
	return "spiffe://" + trustDomain + "/ns/" + n.Namespace + "/sa/" + n.ServiceAccount
}

func (n *Node) label(k string) string {
	if n == nil {
		return ""
	}
	return n.Labels[k]
}

// Struct is the node metadata as Istio encodes it.
func (n *Node) Struct() *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	set := func(k, v string) {
		if v != "" {
			s.Fields[k] = structpb.NewStringValue(v)
		}
	}
	set("NAME", n.Name)
	set("NAMESPACE", n.Namespace)
	set("WORKLOAD_NAME", n.WorkloadName)
	set("OWNER", n.Owner)
	set("CLUSTER_ID", n.ClusterID)
	set("MESH_ID", n.MeshID)
	set("SERVICE_ACCOUNT", n.ServiceAccount)
	if len(n.Labels) > 0 {
		ls := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range n.Labels {
			ls.Fields[k] = structpb.NewStringValue(v)
		}
		s.Fields["LABELS"] = structpb.NewStructValue(ls)
	}
	return s
}

// FromStruct reads node metadata; unknown keys are ignored, as Istio's
// proxies ignore the keys they do not label with.
func FromStruct(s *structpb.Struct) *Node {
	n := &Node{}
	str := func(k string) string { return s.GetFields()[k].GetStringValue() }
	n.Name, n.Namespace, n.WorkloadName, n.Owner = str("NAME"), str("NAMESPACE"), str("WORKLOAD_NAME"), str("OWNER")
	n.ClusterID, n.MeshID, n.ServiceAccount = str("CLUSTER_ID"), str("MESH_ID"), str("SERVICE_ACCOUNT")
	if ls := s.GetFields()["LABELS"].GetStructValue(); ls != nil {
		n.Labels = make(map[string]string, len(ls.GetFields()))
		for k, v := range ls.GetFields() {
			n.Labels[k] = v.GetStringValue()
		}
	}
	return n
}

// Header is the x-envoy-peer-metadata value: the node metadata Struct in
// protobuf wire form, base64 (standard alphabet), computed once.
func (n *Node) Header() string {
	n.once.Do(func() {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n.Struct())
		n.encoded = base64.StdEncoding.EncodeToString(b)
	})
	return n.encoded
}

// ParseHeader decodes an x-envoy-peer-metadata value (with its -id header's value).
func ParseHeader(v, id string) (*Node, error) {
	if len(v) > maxEncoded {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", HeaderMetadata, len(v), maxEncoded)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %w", HeaderMetadata, err)
	}
	s := &structpb.Struct{}
	if err := proto.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: not a protobuf Struct: %w", HeaderMetadata, err)
	}
	n := FromStruct(s)
	n.ID = id
	return n, nil
}

// String is a short description for logs.
func (n *Node) String() string {
	if n == nil {
		return "<none>"
	}
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return n.Namespace + "/" + n.Workload() + " [" + strings.Join(keys, ",") + "]"
}

// cache remembers parsed headers: a proxy sees the same few peers' headers
// on every request, so each is decoded once. It stops growing at cacheMax
// entries (later peers are decoded per request).
type cache struct {
	m  sync.Map // header value → *Node
	n  int
	mu sync.Mutex
}

const cacheMax = 4096

var errEmpty = errors.New("empty")

func (c *cache) get(v, id string) (*Node, error) {
	if v == "" {
		return nil, errEmpty
	}
	if n, ok := c.m.Load(v); ok {
		if nn := n.(*Node); nn.ID == id {
			return nn, nil
		}
	}
	n, err := ParseHeader(v, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.n < cacheMax {
		c.n++
		c.m.Store(v, n)
	}
	c.mu.Unlock()
	return n, nil
}

// FromEnv reads the node metadata a proxy's environment carries, as
// Istio's agent does: ISTIO_META_<KEY> string values (WORKLOAD_NAME, OWNER,
// CLUSTER_ID, MESH_ID), ISTIO_METAJSON_LABELS (a JSON object of labels),
// POD_NAME, POD_NAMESPACE and SERVICE_ACCOUNT. A bad labels value is an
// error naming the variable.
func FromEnv(getenv func(string) string) (*Node, error) {
	n := &Node{Name: getenv("POD_NAME"), Namespace: getenv("POD_NAMESPACE"), ServiceAccount: getenv("SERVICE_ACCOUNT"),
		WorkloadName: getenv("ISTIO_META_WORKLOAD_NAME"), Owner: getenv("ISTIO_META_OWNER"),
		ClusterID: getenv("ISTIO_META_CLUSTER_ID"), MeshID: getenv("ISTIO_META_MESH_ID")}
	if js := getenv("ISTIO_METAJSON_LABELS"); js != "" {
		if err := json.Unmarshal([]byte(js), &n.Labels); err != nil {
			return nil, fmt.Errorf("environment ISTIO_METAJSON_LABELS: want a JSON object of string labels: %w", err)
		}
	}
	return n, nil
}
