package pilottest

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/types/known/structpb"
	"io"
	"sort"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/nds"
)

// ADSClient is a minimal Envoy-like SotW ADS client: it subscribes to
// clusters and listeners, then to the endpoints and routes they name, and
// ACKs (or, when Reject says so, NACKs) every response.
type ADSClient struct {
	NodeID string
	// Metadata is sent as the node's metadata (nil: none).
	Metadata *structpb.Struct
	// Wildcard subscribes to every type without names and neither decodes
	// nor keeps the resources (only their count), for benchmarks with
	// thousands of clients.
	Wildcard bool
	// Reject, when set, is asked about each response; a non-nil error NACKs it.
	Reject func(typeURL string, resources []*anypb.Any) error
	// OnApply is called after each ACKed response with its type and version.
	OnApply func(typeURL, version string)
	// Types are further types subscribed to without names (the name
	// table, NDS, for a proxy that captures DNS).
	Types []string

	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient

	mu        sync.Mutex
	resources map[string]map[string]*anypb.Any
	versions  map[string]string
	subs      map[string][]string
	counts    map[string]int
	changed   chan struct{}
	err       error
}

// Start opens the ADS stream on conn and begins subscribing.
func (c *ADSClient) Start(ctx context.Context, conn *grpc.ClientConn) error {
	c.resources = map[string]map[string]*anypb.Any{}
	c.versions = map[string]string{}
	c.subs = map[string][]string{}
	c.counts = map[string]int{}
	c.changed = make(chan struct{}, 1)
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	c.stream = s
	types := []string{resourcev3.ClusterType, resourcev3.ListenerType}
	if c.Wildcard {
		types = append(types, resourcev3.EndpointType, resourcev3.RouteType)
	}
	types = append(types, c.Types...)
	for i, t := range types {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = &corev3.Node{Id: c.NodeID, Metadata: c.Metadata}
		}
		if err := s.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				// The server ended the stream; its reason comes with Recv.
				_, err = s.Recv()
			}
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	go c.loop()
	return nil
}

func (c *ADSClient) loop() {
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			c.notify()
			return
		}
		if err := c.handle(resp); err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			c.notify()
			return
		}
	}
}

func (c *ADSClient) handle(resp *discoveryv3.DiscoveryResponse) error {
	t := resp.TypeUrl
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: resp.Nonce}
	if c.Reject != nil {
		if err := c.Reject(t, resp.Resources); err != nil {
			c.mu.Lock()
			ack.VersionInfo = c.versions[t]
			ack.ResourceNames = c.subs[t]
			c.mu.Unlock()
			ack.ErrorDetail = &status.Status{Code: 3, Message: err.Error()}
			return c.stream.Send(ack)
		}
	}
	byName := map[string]*anypb.Any{}
	var edsNames, rdsNames []string
	for _, a := range resp.Resources {
		if c.Wildcard {
			continue
		}
		name, eds, rds, err := inspect(t, a)
		if err != nil {
			return err
		}
		byName[name] = a
		edsNames = append(edsNames, eds...)
		rdsNames = append(rdsNames, rds...)
	}
	c.mu.Lock()
	if t != resourcev3.ListenerType && t != resourcev3.ClusterType {
		// Only listeners and clusters come as the whole set; a response of
		// another type carries the resources that changed, as in Envoy.
		for n, a := range c.resources[t] {
			if _, ok := byName[n]; !ok {
				byName[n] = a
			}
		}
	}
	c.resources[t] = byName
	if c.Wildcard {
		c.counts[t] = len(resp.Resources)
	}
	c.versions[t] = resp.VersionInfo
	ack.VersionInfo = resp.VersionInfo
	ack.ResourceNames = c.subs[t]
	var follow []*discoveryv3.DiscoveryRequest
	if !c.Wildcard {
		if t == resourcev3.ClusterType {
			follow = c.resubscribe(resourcev3.EndpointType, edsNames, follow)
		}
		if t == resourcev3.ListenerType {
			follow = c.resubscribe(resourcev3.RouteType, rdsNames, follow)
		}
	}
	c.mu.Unlock()
	if err := c.stream.Send(ack); err != nil {
		return err
	}
	for _, f := range follow {
		if err := c.stream.Send(f); err != nil {
			return err
		}
	}
	if c.OnApply != nil {
		c.OnApply(t, resp.VersionInfo)
	}
	c.notify()
	return nil
}

// resubscribe asks for a new set of names of type t when it changed.
func (c *ADSClient) resubscribe(t string, names []string, out []*discoveryv3.DiscoveryRequest) []*discoveryv3.DiscoveryRequest {
	sort.Strings(names)
	if fmt.Sprint(names) == fmt.Sprint(c.subs[t]) || len(names) == 0 {
		return out
	}
	c.subs[t] = names
	keep := map[string]*anypb.Any{}
	for _, n := range names {
		if a, ok := c.resources[t][n]; ok {
			keep[n] = a
		}
	}
	c.resources[t] = keep
	return append(out, &discoveryv3.DiscoveryRequest{TypeUrl: t, ResourceNames: names, VersionInfo: c.versions[t]})
}

func inspect(t string, a *anypb.Any) (name string, eds, rds []string, err error) {
	switch t {
	case resourcev3.ClusterType:
		var cl clusterv3.Cluster
		if err := a.UnmarshalTo(&cl); err != nil {
			return "", nil, nil, err
		}
		if cl.GetType() == clusterv3.Cluster_EDS {
			n := cl.GetEdsClusterConfig().GetServiceName()
			if n == "" {
				n = cl.Name
			}
			eds = append(eds, n)
		}
		return cl.Name, eds, nil, nil
	case resourcev3.ListenerType:
		var l listenerv3.Listener
		if err := a.UnmarshalTo(&l); err != nil {
			return "", nil, nil, err
		}
		chains := append([]*listenerv3.FilterChain{l.DefaultFilterChain}, l.FilterChains...)
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageIs(&h) && f.GetTypedConfig().UnmarshalTo(&h) == nil && h.GetRds() != nil {
					rds = append(rds, h.GetRds().RouteConfigName)
				}
			}
		}
		return l.Name, nil, dedupe(rds), nil
	case nds.TypeURL:
		return "", nil, nil, nil // one table, unnamed
	default:
		var named interface{ GetName() string }
		m, err := a.UnmarshalNew()
		if err != nil {
			return "", nil, nil, err
		}
		if n, ok := m.(interface{ GetClusterName() string }); ok {
			return n.GetClusterName(), nil, nil, nil
		}
		if n, ok := m.(interface{ GetName() string }); ok {
			named = n
			return named.GetName(), nil, nil, nil
		}
		return "", nil, nil, fmt.Errorf("resource of %s has no name", t)
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func (c *ADSClient) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Resource returns the resource of type t called name, if received.
func (c *ADSClient) Resource(t, name string) *anypb.Any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resources[t][name]
}

// Version returns the last version of type t the client accepted.
func (c *ADSClient) Version(t string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[t]
}

// Count returns how many resources of type t the client holds.
func (c *ADSClient) Count(t string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Wildcard {
		return c.counts[t]
	}
	return len(c.resources[t])
}

// WaitFor blocks until cond holds (checked after each response), the
// stream fails, or ctx ends.
func (c *ADSClient) WaitFor(ctx context.Context, cond func(*ADSClient) bool) error {
	for {
		if cond(c) {
			return nil
		}
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("ADS stream ended: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.changed:
		}
	}
}
