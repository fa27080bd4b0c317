package pilottest

import (
	"context"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
)

// DeltaClient is a minimal incremental (delta) ADS client subscribing to
// everything of CDS, EDS, LDS and RDS; it ACKs every response and reports
// it to OnApply. It keeps no resources: it is for benchmarks.
type DeltaClient struct {
	NodeID  string
	OnApply func(typeURL string, resources int)

	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	Err    chan error
}

// Start opens the stream on conn and subscribes.
func (c *DeltaClient) Start(ctx context.Context, conn *grpc.ClientConn) error {
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open delta ADS stream: %w", err)
	}
	c.stream = s
	c.Err = make(chan error, 1)
	for i, t := range []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.EndpointType, resourcev3.RouteType} {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: []string{"*"}}
		if i == 0 {
			req.Node = &corev3.Node{Id: c.NodeID}
		}
		if err := s.Send(req); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	go func() {
		for {
			resp, err := s.Recv()
			if err != nil {
				c.Err <- err
				return
			}
			if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}); err != nil {
				c.Err <- err
				return
			}
			if c.OnApply != nil {
				c.OnApply(resp.TypeUrl, len(resp.Resources))
			}
		}
	}()
	return nil
}
