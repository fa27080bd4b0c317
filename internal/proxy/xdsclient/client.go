// Package xdsclient is an Envoy v3 ADS client: one gRPC stream carrying
// listeners, routes, clusters, endpoints and secrets, state-of-the-world or
// incremental (delta). Each response is ACKed or NACKed (with the reason in
// error_detail); the stream reconnects with backoff, and the last accepted
// configuration keeps serving while the control plane is away.
package xdsclient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"

	"mesh.dev/mesh/internal/proxy/config"

	"mesh.dev/mesh/internal/proxy/logging"
)

// configLog is Envoy's "config" logger, which xDS updates go to.
var configLog = logging.Default.Logger("config")

// Handler applies updates and says which named resources to ask for next.
type Handler interface {
	// Apply installs an update; an error becomes a NACK carrying its text.
	Apply(u config.Update) error
	// Names lists the resource names to subscribe to for a non-wildcard type (EDS, RDS, SDS).
	Names(typeURL string) []string
	// Warming reports clusters still waiting for their endpoints; listener and
	// route updates wait for them, as Envoy pauses LDS/RDS during cluster warming,
	// so a route never points at a cluster that cannot serve yet.
	Warming() bool
}

// warmingLimit bounds how long listener and route updates wait for warming clusters.
const warmingLimit = 15 * time.Second

func heldDuringWarming(t string) bool { return t == config.ListenerType || t == config.RouteType }

// Client is one ADS session.
type Client struct {
	Conn    *grpc.ClientConn
	Node    *corev3.Node
	Handler Handler
	Delta   bool
	// Types are further types subscribed to without names, after clusters
	// and listeners (Istio's name table, NDS, when the proxy captures DNS).
	Types []string
	// Backoff bounds for reconnects.
	MinBackoff, MaxBackoff time.Duration

	mu        sync.Mutex
	connected bool
	lastErr   error
	acked     map[string]string
}

// Order of first subscription, as Envoy does it: clusters before listeners, their dependents after.
var typeOrder = []string{config.ClusterType, config.EndpointType, config.ListenerType, config.RouteType, config.SecretType}

// wildcard reports whether t is subscribed to as a whole set: clusters,
// listeners, and the further types the client was given.
func (c *Client) wildcard(t string) bool {
	return t == config.ClusterType || t == config.ListenerType || slices.Contains(c.Types, t)
}

// wildcardTypes are the types subscribed to at the start of a stream.
func (c *Client) wildcardTypes() []string {
	return append([]string{config.ClusterType, config.ListenerType}, c.Types...)
}

// Status reports whether the stream is up, the last stream error, and the ACKed versions.
func (c *Client) Status() (bool, error, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := map[string]string{}
	for k, x := range c.acked {
		v[k] = x
	}
	return c.connected, c.lastErr, v
}

// Default reconnect backoff bounds, Envoy's for its xDS streams.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// ConnectParams bounds the gRPC channel's own reconnects by the stream's
// backoff (zero: the defaults). Left to gRPC's defaults the channel waits
// up to 120 s between dials, and while it waits every new stream fails at
// once: a proxy started while its control plane was unreachable for a
// minute stayed unconfigured minutes after the control plane came back.
func ConnectParams(minB, maxB time.Duration) grpc.ConnectParams {
	minB, maxB = bounds(minB, maxB)
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: minB, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxB},
		MinConnectTimeout: 10 * time.Second,
	}
}

func bounds(minB, maxB time.Duration) (time.Duration, time.Duration) {
	if minB == 0 {
		minB = DefaultMinBackoff
	}
	if maxB == 0 {
		maxB = DefaultMaxBackoff
	}
	return minB, maxB
}

// Run keeps a stream open until ctx ends, reconnecting with jittered exponential backoff.
func (c *Client) Run(ctx context.Context) {
	minB, maxB := bounds(c.MinBackoff, c.MaxBackoff)
	backoff := minB
	for ctx.Err() == nil {
		start := time.Now()
		var err error
		if c.Delta {
			err = c.runDelta(ctx)
		} else {
			err = c.runSotW(ctx)
		}
		c.mu.Lock()
		c.connected, c.lastErr = false, err
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		configLog.Warn("ADS stream ended; serving the last accepted config", "err", err)
		if time.Since(start) > maxB {
			backoff = minB // the stream was healthy for a while: start over
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxB)
	}
}

func (c *Client) setConnected() {
	c.mu.Lock()
	c.connected, c.lastErr = true, nil
	if c.acked == nil {
		c.acked = map[string]string{}
	}
	c.mu.Unlock()
}

func (c *Client) setAcked(t, v string) {
	c.mu.Lock()
	c.acked[t] = v
	c.mu.Unlock()
}

type sotwState struct {
	version, nonce string
	names          []string
	sent           bool
	lastNack       string    // version last rejected
	nackDue        time.Time // when a repeated NACK may be sent
	nackErr        error
}

// nackRepeatDelay spaces out NACKs of a version already rejected: a server
// that answers every NACK with the same bad version would otherwise spin.
const nackRepeatDelay = time.Second

func (c *Client) runSotW(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.Conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	c.setConnected()
	state := map[string]*sotwState{}
	first := true
	send := func(t string, errDetail error) error {
		s := state[t]
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: s.version, ResponseNonce: s.nonce, ResourceNames: s.names}
		if first {
			req.Node = c.Node
			first = false
		}
		if errDetail != nil {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: errDetail.Error()}
		}
		s.sent = true
		return stream.Send(req)
	}
	// resubscribe asks for named types whose wanted names changed.
	resubscribe := func() error {
		for _, t := range typeOrder {
			if c.wildcard(t) {
				continue
			}
			names := c.Handler.Names(t)
			s := state[t]
			if s == nil {
				if len(names) == 0 {
					continue
				}
				s = &sotwState{}
				state[t] = s
			} else if slices.Equal(s.names, names) {
				continue
			}
			s.names = names
			if err := send(t, nil); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range c.wildcardTypes() {
		state[t] = &sotwState{}
		if err := send(t, nil); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	if err := resubscribe(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	handle := func(resp *discoveryv3.DiscoveryResponse) error {
		t := resp.GetTypeUrl()
		s := state[t]
		if s == nil {
			s = &sotwState{}
			state[t] = s
		}
		s.nonce = resp.GetNonce()
		aerr := c.Handler.Apply(config.Update{TypeURL: t, Version: resp.GetVersionInfo(), Replace: c.wildcard(t), Resources: resp.GetResources()})
		if aerr != nil && s.lastNack == resp.GetVersionInfo() {
			s.nackDue, s.nackErr = time.Now().Add(nackRepeatDelay), aerr
			return nil
		}
		if aerr != nil {
			s.lastNack = resp.GetVersionInfo()
			configLog.Warn("rejected xDS update (NACK)", "type", t, "version", resp.GetVersionInfo(), "err", aerr)
		} else {
			s.version = resp.GetVersionInfo()
			c.setAcked(t, s.version)
		}
		if err := send(t, aerr); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if aerr == nil {
			if err := resubscribe(); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	}
	recv, recvErr := pump(ctx, stream.Recv)
	held := map[string]*discoveryv3.DiscoveryResponse{}
	var heldSince time.Time
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	flush := func(force bool) error {
		if len(held) == 0 || (!force && c.Handler.Warming()) {
			return nil
		}
		for _, t := range []string{config.ListenerType, config.RouteType} {
			if r := held[t]; r != nil {
				delete(held, t)
				if err := handle(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for {
		select {
		case err := <-recvErr:
			return fmt.Errorf("receive: %w", err)
		case <-tick.C:
			for t, s := range state {
				if s.nackErr != nil && time.Now().After(s.nackDue) {
					err := s.nackErr
					s.nackErr = nil
					if err := send(t, err); err != nil {
						return fmt.Errorf("send: %w", err)
					}
				}
			}
			if err := flush(time.Since(heldSince) > warmingLimit); err != nil {
				return err
			}
			continue
		case resp := <-recv:
			t := resp.GetTypeUrl()
			if heldDuringWarming(t) && (c.Handler.Warming() || held[config.ListenerType] != nil) {
				if len(held) == 0 {
					heldSince = time.Now()
				}
				held[t] = resp // a newer response supersedes a held one
				continue
			}
			if err := handle(resp); err != nil {
				return err
			}
			if err := flush(false); err != nil {
				return err
			}
		}
	}
}

type deltaState struct {
	names []string
}

func (c *Client) runDelta(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.Conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open delta ADS stream: %w", err)
	}
	c.setConnected()
	state := map[string]*deltaState{}
	first := true
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if first {
			req.Node = c.Node
			first = false
		}
		return stream.Send(req)
	}
	resubscribe := func() error {
		for _, t := range typeOrder {
			if c.wildcard(t) {
				continue
			}
			names := c.Handler.Names(t)
			s := state[t]
			if s == nil {
				if len(names) == 0 {
					continue
				}
				s = &deltaState{}
				state[t] = s
			}
			add, remove := diff(s.names, names)
			if len(add) == 0 && len(remove) == 0 {
				continue
			}
			s.names = names
			if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range c.wildcardTypes() {
		state[t] = &deltaState{}
		// Initial versions let a reconnecting client tell the server what it already has.
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: c.initialVersions(t)}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	if err := resubscribe(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	handle := func(resp *discoveryv3.DeltaDiscoveryResponse) error {
		t := resp.GetTypeUrl()
		u := config.Update{TypeURL: t, Version: resp.GetSystemVersionInfo(), Removed: resp.GetRemovedResources()}
		for _, r := range resp.GetResources() {
			u.Resources = append(u.Resources, r.GetResource())
			u.Names = append(u.Names, r.GetName())
		}
		aerr := c.Handler.Apply(u)
		ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
		if aerr != nil {
			configLog.Warn("rejected delta xDS update (NACK)", "type", t, "err", aerr)
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: aerr.Error()}
		} else {
			c.setAcked(t, resp.GetSystemVersionInfo())
		}
		if err := send(ack); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if aerr == nil {
			if err := resubscribe(); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	}
	recv, recvErr := pump(ctx, stream.Recv)
	// Deltas are incremental, so held ones are kept in order, not superseded.
	var held []*discoveryv3.DeltaDiscoveryResponse
	var heldSince time.Time
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	flush := func(force bool) error {
		if len(held) == 0 || (!force && c.Handler.Warming()) {
			return nil
		}
		for _, t := range []string{config.ListenerType, config.RouteType} {
			for _, r := range held {
				if r.GetTypeUrl() == t {
					if err := handle(r); err != nil {
						return err
					}
				}
			}
		}
		held = nil
		return nil
	}
	for {
		select {
		case err := <-recvErr:
			return fmt.Errorf("receive: %w", err)
		case <-tick.C:
			if err := flush(time.Since(heldSince) > warmingLimit); err != nil {
				return err
			}
		case resp := <-recv:
			if heldDuringWarming(resp.GetTypeUrl()) && (c.Handler.Warming() || len(held) > 0) {
				if len(held) == 0 {
					heldSince = time.Now()
				}
				held = append(held, resp)
				continue
			}
			if err := handle(resp); err != nil {
				return err
			}
			if err := flush(false); err != nil {
				return err
			}
		}
	}
}

// initialVersions is filled by the handler when it can say what it holds.
func (c *Client) initialVersions(string) map[string]string { return nil }

func diff(old, cur []string) (add, remove []string) {
	o := map[string]bool{}
	for _, n := range old {
		o[n] = true
	}
	n := map[string]bool{}
	for _, x := range cur {
		n[x] = true
		if !o[x] {
			add = append(add, x)
		}
	}
	for _, x := range old {
		if !n[x] {
			remove = append(remove, x)
		}
	}
	return add, remove
}

// pump moves a stream's responses onto a channel so the caller can select on
// them beside its other events; the first receive error ends it.
func pump[T any](ctx context.Context, recv func() (T, error)) (<-chan T, <-chan error) {
	out := make(chan T)
	errc := make(chan error, 1)
	go func() {
		for {
			resp, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}
