package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	xdstype "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gprouter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/router/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The Thrift service the tests run, written as the Thrift compiler writes
// Go code: `string call(1: string name)` for every method, and oneway
// `note(1: string name)`. Each server answers "<server>:<method>:<name>".

type strArgs struct{ name string }

func (a *strArgs) Write(ctx context.Context, p thrift.TProtocol) error {
	return writeStringStruct(ctx, p, "args", 1, a.name)
}
func (a *strArgs) Read(ctx context.Context, p thrift.TProtocol) error {
	return readStringStruct(ctx, p, 1, &a.name)
}

type strResult struct{ success string }

func (r *strResult) Write(ctx context.Context, p thrift.TProtocol) error {
	return writeStringStruct(ctx, p, "result", 0, r.success)
}
func (r *strResult) Read(ctx context.Context, p thrift.TProtocol) error {
	return readStringStruct(ctx, p, 0, &r.success)
}

func writeStringStruct(ctx context.Context, p thrift.TProtocol, name string, id int16, v string) error {
	if err := p.WriteStructBegin(ctx, name); err != nil {
		return err
	}
	if err := p.WriteFieldBegin(ctx, "v", thrift.STRING, id); err != nil {
		return err
	}
	if err := p.WriteString(ctx, v); err != nil {
		return err
	}
	if err := p.WriteFieldEnd(ctx); err != nil {
		return err
	}
	if err := p.WriteFieldStop(ctx); err != nil {
		return err
	}
	return p.WriteStructEnd(ctx)
}

func readStringStruct(ctx context.Context, p thrift.TProtocol, id int16, v *string) error {
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return err
	}
	for {
		_, typ, fid, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if typ == thrift.STOP {
			break
		}
		if fid == id && typ == thrift.STRING {
			if *v, err = p.ReadString(ctx); err != nil {
				return err
			}
		} else if err := p.Skip(ctx, typ); err != nil {
			return err
		}
		if err := p.ReadFieldEnd(ctx); err != nil {
			return err
		}
	}
	return p.ReadStructEnd(ctx)
}

// thriftServer is a real TSimpleServer over THeader's server transport,
// which answers each client in the transport and protocol it spoke
// (framed or unframed binary or compact, or THeader).
type thriftServer struct {
	name   string
	addr   string
	oneway chan string
}

func (s *thriftServer) Process(ctx context.Context, in, out thrift.TProtocol) (bool, thrift.TException) {
	method, typ, seq, err := in.ReadMessageBegin(ctx)
	if err != nil {
		return false, thrift.WrapTException(err)
	}
	var a strArgs
	if err := a.Read(ctx, in); err != nil {
		return false, thrift.WrapTException(err)
	}
	in.ReadMessageEnd(ctx)
	if typ == thrift.ONEWAY || method == "gonote" { // gonote is declared oneway: the Go library sends it as CALL
		s.oneway <- s.name + ":" + method + ":" + a.name
		return true, nil
	}
	if method == "slow" {
		time.Sleep(1500 * time.Millisecond)
	}
	out.WriteMessageBegin(ctx, method, thrift.REPLY, seq)
	(&strResult{s.name + ":" + method + ":" + a.name}).Write(ctx, out)
	out.WriteMessageEnd(ctx)
	if err := out.Flush(ctx); err != nil {
		return false, thrift.WrapTException(err)
	}
	return true, nil
}
func (s *thriftServer) ProcessorMap() map[string]thrift.TProcessorFunction  { return nil }
func (s *thriftServer) AddToProcessorMap(string, thrift.TProcessorFunction) {}

func startThriftServer(t *testing.T, name string) *thriftServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &thriftServer{name: name, addr: ln.Addr().String(), oneway: make(chan string, 100)}
	ln.Close()
	sock, err := thrift.NewTServerSocket(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &thrift.TConfiguration{}
	srv := thrift.NewTSimpleServer4(s, sock, thrift.NewTHeaderTransportFactoryConf(nil, cfg), thrift.NewTHeaderProtocolFactoryConf(cfg))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Stop() })
	return s
}

func (s *thriftServer) port() uint32 {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return uint32(n)
}

// thriftClient is a real Thrift client in one of the wire formats.
type thriftClient struct {
	sock   *thrift.TSocket
	client *thrift.TStandardClient
	prot   thrift.TProtocol
	seq    int32
}

func dialThrift(t *testing.T, addr, format string) *thriftClient {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second}
	sock := thrift.NewTSocketConf(addr, cfg)
	if err := sock.Open(); err != nil {
		t.Fatal(err)
	}
	var prot thrift.TProtocol
	switch format {
	case "binary/framed":
		prot = thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(sock, cfg), cfg)
	case "binary/unframed":
		prot = thrift.NewTBinaryProtocolConf(thrift.NewTBufferedTransport(sock, 4096), cfg)
	case "compact/framed":
		prot = thrift.NewTCompactProtocolConf(thrift.NewTFramedTransportConf(sock, cfg), cfg)
	case "compact/unframed":
		prot = thrift.NewTCompactProtocolConf(thrift.NewTBufferedTransport(sock, 4096), cfg)
	case "header/binary", "header/compact":
		hc := *cfg
		id := thrift.THeaderProtocolBinary
		if format == "header/compact" {
			id = thrift.THeaderProtocolCompact
		}
		hc.THeaderProtocolID = thrift.THeaderProtocolIDPtrMust(id)
		prot = thrift.NewTHeaderProtocolConf(sock, &hc)
	default:
		t.Fatalf("unknown format %s", format)
	}
	t.Cleanup(func() { sock.Close() })
	return &thriftClient{sock: sock, client: thrift.NewTStandardClient(prot, prot), prot: prot}
}

func (c *thriftClient) call(ctx context.Context, method, name string) (string, error) {
	var r strResult
	_, err := c.client.Call(ctx, method, &strArgs{name}, &r)
	return r.success, err
}

// oneway sends a ONEWAY message, as Thrift's Java and C++ clients mark one-way calls.
func (c *thriftClient) oneway(ctx context.Context, method, name string) error {
	c.seq++
	if hp, ok := c.prot.(*thrift.THeaderProtocol); ok {
		hp.ClearWriteHeaders() // as TStandardClient does before each call
	}
	if err := c.prot.WriteMessageBegin(ctx, method, thrift.ONEWAY, 1000+c.seq); err != nil {
		return err
	}
	if err := (&strArgs{name}).Write(ctx, c.prot); err != nil {
		return err
	}
	if err := c.prot.WriteMessageEnd(ctx); err != nil {
		return err
	}
	return c.prot.Flush(ctx)
}

// The generic_proxy config pieces.

func typedStruct(t *testing.T, typeURL string, v map[string]any) *corev3.TypedExtensionConfig {
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TypedExtensionConfig{Name: "codec", TypedConfig: mustAny(t, &xdstype.TypedStruct{TypeUrl: typeURL, Value: s})}
}

func gpInput(t *testing.T, m interface{ ProtoReflect() protoreflectMessage }) *xdscore.TypedExtensionConfig {
	return &xdscore.TypedExtensionConfig{Name: "input", TypedConfig: mustAny(t, m)}
}

func gpAction(t *testing.T, ra *actionv3.RouteAction) *xdsmatcher.Matcher_OnMatch {
	return &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{Action: &xdscore.TypedExtensionConfig{Name: "route", TypedConfig: mustAny(t, ra)}}}
}

func toCluster(name string) *actionv3.RouteAction {
	return &actionv3.RouteAction{Name: name, ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: name}}
}

func exactOn(t *testing.T, in *xdscore.TypedExtensionConfig, v string, ra *actionv3.RouteAction) *xdsmatcher.Matcher_MatcherList_FieldMatcher {
	return &xdsmatcher.Matcher_MatcherList_FieldMatcher{
		Predicate: &xdsmatcher.Matcher_MatcherList_Predicate{MatchType: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{
			SinglePredicate: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate{Input: in,
				Matcher: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: &xdsmatcher.StringMatcher{MatchPattern: &xdsmatcher.StringMatcher_Exact{Exact: v}}}}}},
		OnMatch: gpAction(t, ra),
	}
}

func genericListener(t *testing.T, name string, port uint32, gp *gpv3.GenericProxy) *listenerv3.Listener {
	return &listenerv3.Listener{Name: name, Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.generic_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, gp)}}}}}}
}

func thriftCLA(name string, ports ...uint32) *endpointv3.ClusterLoadAssignment {
	var eps []*endpointv3.LbEndpoint
	for _, p := range ports {
		eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", p)}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
}

// failingEndpoint accepts connections and closes them at once, as a crashing server does.
func failingEndpoint(t *testing.T) uint32 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// thriftProxyConfig: method "bye" and the THeader header tenant=blue go to
// b, "flaky" (retried) and "flakyonce" (not) to a cluster of a real server
// and a failing endpoint, "slow" to a with a short timeout, the rest to a.
func thriftProxyConfig(t *testing.T, port uint32) *listenerv3.Listener {
	method := gpInput(t, &gpmatcher.MethodMatchInput{})
	retried := toCluster("flaky")
	retried.Name = "flaky-retried"
	retried.RetryPolicy = &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(3)}
	once := toCluster("flaky")
	once.Name = "flaky-once"
	slow := toCluster("a")
	slow.Name = "slow"
	slow.Timeout = durationpb.New(300 * time.Millisecond)
	routes := &xdsmatcher.Matcher{
		MatcherType: &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{Matchers: []*xdsmatcher.Matcher_MatcherList_FieldMatcher{
			exactOn(t, method, "bye", toCluster("b")),
			exactOn(t, gpInput(t, &gpmatcher.PropertyMatchInput{PropertyName: "tenant"}), "blue", toCluster("b")),
			exactOn(t, method, "flaky", retried),
			exactOn(t, method, "flakyonce", once),
			exactOn(t, method, "slow", slow),
			exactOn(t, method, "split", &actionv3.RouteAction{Name: "split", ClusterSpecifier: &actionv3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(1)}, {Name: "b", Weight: wrapperspb.UInt32(3)}}}}}),
		}}},
		OnNoMatch: gpAction(t, toCluster("a")),
	}
	gp := &gpv3.GenericProxy{
		StatPrefix:     "thrift_in",
		CodecConfig:    typedStruct(t, "type.googleapis.com/mesh.generic_proxy.codecs.thrift.v1alpha1.ThriftCodecConfig", map[string]any{"protocol": "auto", "transport": "auto", "oneway_methods": []any{"gonote"}}),
		RouteSpecifier: &gpv3.GenericProxy_RouteConfig{RouteConfig: &gpv3.RouteConfiguration{Name: "thrift", Routes: routes}},
		Filters:        []*corev3.TypedExtensionConfig{{Name: "envoy.filters.generic.router", TypedConfig: mustAny(t, &gprouter.Router{})}},
	}
	return genericListener(t, "thrift", port, gp)
}

func init() { thrift.ServerStopTimeout = time.Second }

// TestThriftThroughGenericProxy: real Apache Thrift clients and servers
// through mesh-proxy configured over a real ADS stream: calls are routed by
// method and by a THeader header to two servers, in every wire format;
// a failing endpoint is retried past (and shows when not retried); a slow
// call times out with a TApplicationException; one-way messages arrive;
// many clients share a few upstream connections with their seqids kept apart.
func TestThriftThroughGenericProxy(t *testing.T) {
	a, b, c := startThriftServer(t, "a"), startThriftServer(t, "b"), startThriftServer(t, "c")
	bad2 := failingEndpoint(t)
	cp := startControlPlane(t, "")
	port := freePort(t)
	cp.set(map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {thriftProxyConfig(t, port)},
		resourcev3.ClusterType:  {edsCluster("a"), edsCluster("b"), edsCluster("flaky")},
		resourcev3.EndpointType: {thriftCLA("a", a.port()), thriftCLA("b", b.port()), thriftCLA("flaky", c.port(), bad2)},
	})
	p := startProxy(t, cp.addr)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	eventually(t, "the generic_proxy listener to serve", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	if n := cp.nackMessages(); len(n) > 0 {
		t.Fatalf("the proxy refused the config: %v", n)
	}
	ctx := context.Background()

	for _, format := range []string{"binary/framed", "binary/unframed", "compact/framed", "compact/unframed", "header/binary", "header/compact"} {
		t.Run(format, func(t *testing.T) {
			cl := dialThrift(t, addr, format)
			for i := 0; i < 3; i++ {
				for _, m := range []struct{ method, want string }{{"hello", "a"}, {"bye", "b"}} {
					name := fmt.Sprintf("%s-%d", m.method, i)
					got, err := cl.call(ctx, m.method, name)
					if want := m.want + ":" + m.method + ":" + name; err != nil || got != want {
						t.Fatalf("%s(%q) through the proxy: %q, %v; want %q", m.method, name, got, err, want)
					}
				}
			}
			if strings.HasPrefix(format, "header/") {
				hctx := thrift.SetWriteHeaderList(thrift.SetHeader(ctx, "tenant", "blue"), []string{"tenant"})
				if got, err := cl.call(hctx, "hello", "h"); err != nil || got != "b:hello:h" {
					t.Fatalf("hello with THeader tenant=blue: %q, %v; want it routed to b", got, err)
				}
			}
			if err := cl.oneway(ctx, "note", format); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-a.oneway:
				if got != "a:note:"+format {
					t.Fatalf("one-way message arrived as %q", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the one-way message did not reach server a")
			}
			// The one-way message had no answer: the next call's reply is its own.
			if got, err := cl.call(ctx, "hello", "after-oneway"); err != nil || got != "a:hello:after-oneway" {
				t.Fatalf("call after a one-way message: %q, %v", got, err)
			}
			// A one-way call as the Go library makes it (a CALL with no
			// result read), for a method the codec's oneway_methods names.
			if _, err := cl.client.Call(ctx, "gonote", &strArgs{format}, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-a.oneway:
				if got != "a:gonote:"+format {
					t.Fatalf("Go one-way call arrived as %q", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the Go one-way call did not reach server a")
			}
			if got, err := cl.call(ctx, "hello", "after-gonote"); err != nil || got != "a:hello:after-gonote" {
				t.Fatalf("call after a Go one-way call: %q, %v", got, err)
			}
			// The proxy does not hold the one-way call waiting for a reply
			// (it would until the route's 15s timeout, then answer it).
			eventually(t, "no request left in flight", func() bool {
				_, stats := adminGet(t, p, "/stats")
				return statValue(t, stats, "generic_proxy.thrift_in.downstream_rq_active") == 0
			})
		})
	}

	t.Run("retries", func(t *testing.T) {
		cl := dialThrift(t, addr, "binary/framed")
		for i := 0; i < 10; i++ {
			got, err := cl.call(ctx, "flaky", strconv.Itoa(i))
			if want := "c:flaky:" + strconv.Itoa(i); err != nil || got != want {
				t.Fatalf("flaky call %d with retries: %q, %v; want %q", i, got, err, want)
			}
		}
		// Without retries, the calls the failing endpoint gets fail, with
		// an application exception the client reads (the connection stays usable).
		failed := 0
		for i := 0; i < 10; i++ {
			got, err := cl.call(ctx, "flakyonce", strconv.Itoa(i))
			var ae thrift.TApplicationException
			switch {
			case err == nil && got == "c:flakyonce:"+strconv.Itoa(i):
			case errors.As(err, &ae) && strings.Contains(ae.Error(), "upstream connect error or disconnect"):
				failed++
			default:
				t.Fatalf("flakyonce call %d: %q, %v", i, got, err)
			}
		}
		if failed == 0 || failed == 10 {
			t.Fatalf("without retries %d of 10 calls failed; want the failing endpoint's share to fail", failed)
		}
		_, stats := adminGet(t, p, "/stats")
		if !regexp.MustCompile(`(?m)^generic_proxy\.thrift_in\.downstream_rq_retry: [1-9]`).MatchString(stats) {
			t.Fatalf("no retries counted:\n%s", grepLines(stats, "generic_proxy."))
		}
	})

	t.Run("timeout", func(t *testing.T) {
		cl := dialThrift(t, addr, "compact/framed")
		_, err := cl.call(ctx, "slow", "x")
		var ae thrift.TApplicationException
		if !errors.As(err, &ae) || !strings.Contains(ae.Error(), "timeout") {
			t.Fatalf("slow call past its route's 300ms timeout: %v; want a TApplicationException naming the timeout", err)
		}
		// The late reply is dropped, not handed to the next call.
		time.Sleep(1500 * time.Millisecond)
		if got, err := cl.call(ctx, "hello", "next"); err != nil || got != "a:hello:next" {
			t.Fatalf("the call after a timed-out one: %q, %v", got, err)
		}
	})

	t.Run("multiplexed", func(t *testing.T) {
		_, before := adminGet(t, p, "/stats")
		const clients, calls = 32, 20
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := 0; i < clients; i++ {
			cl := dialThrift(t, addr, "binary/framed")
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < calls; j++ {
					name := fmt.Sprintf("c%d-%d", i, j)
					got, err := cl.call(ctx, "hello", name)
					if err != nil || got != "a:hello:"+name {
						errs <- fmt.Errorf("client %d call %d: %q, %v", i, j, got, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		_, after := adminGet(t, p, "/stats")
		opened := statValue(t, after, "cluster.a.upstream_cx_total") - statValue(t, before, "cluster.a.upstream_cx_total")
		if opened > 8 {
			t.Fatalf("%d clients opened %d upstream connections to a; the pool shares at most 8", clients, opened)
		}
	})

	t.Run("weighted", func(t *testing.T) {
		cl := dialThrift(t, addr, "compact/framed")
		got := map[string]int{}
		for i := 0; i < 400; i++ {
			r, err := cl.call(ctx, "split", "w")
			if err != nil {
				t.Fatal(err)
			}
			got[strings.SplitN(r, ":", 2)[0]]++
		}
		// 1:3 between a and b; the bounds are many standard deviations wide.
		if got["a"]+got["b"] != 400 || got["b"] < 220 || got["b"] > 380 {
			t.Fatalf("a 1:3 split of 400 calls went %v", got)
		}
	})

	t.Run("endpoints change under load", func(t *testing.T) {
		a2 := startThriftServer(t, "a2")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var calls, fromA2 atomic.Int64
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			cl := dialThrift(t, addr, "binary/framed")
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("l%d-%d", i, j)
					got, err := cl.call(ctx, "hello", name)
					if err != nil || !strings.HasSuffix(got, ":hello:"+name) {
						errs <- fmt.Errorf("call %s during the change: %q, %v", name, got, err)
						return
					}
					calls.Add(1)
					if strings.HasPrefix(got, "a2:") {
						fromA2.Add(1)
					}
				}
			}()
		}
		eventually(t, "calls flowing", func() bool { return calls.Load() > 200 })
		// Cluster a's endpoint moves from server a to a2, as a subset change
		// moves a destination; a keeps running, as a draining pod does.
		cp.set(map[resourcev3.Type][]types.Resource{
			resourcev3.ListenerType: {thriftProxyConfig(t, port)},
			resourcev3.ClusterType:  {edsCluster("a"), edsCluster("b"), edsCluster("flaky")},
			resourcev3.EndpointType: {thriftCLA("a", a2.port()), thriftCLA("b", b.port()), thriftCLA("flaky", c.port(), bad2)},
		})
		eventually(t, "calls answered by a2", func() bool { return fromA2.Load() > 200 })
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("nack", func(t *testing.T) {
		bad := thriftProxyConfig(t, port)
		gp := &gpv3.GenericProxy{}
		if err := bad.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(gp); err != nil {
			t.Fatal(err)
		}
		gp.CodecConfig = typedStruct(t, "type.googleapis.com/mesh.generic_proxy.codecs.thrift.v1alpha1.ThriftCodecConfig", map[string]any{"protocol": "binary", "framing": "strict"})
		bad.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, gp)}
		cp.set(map[resourcev3.Type][]types.Resource{
			resourcev3.ListenerType: {bad},
			resourcev3.ClusterType:  {edsCluster("a"), edsCluster("b"), edsCluster("flaky")},
			resourcev3.EndpointType: {thriftCLA("a", a.port()), thriftCLA("b", b.port()), thriftCLA("flaky", c.port(), bad2)},
		})
		eventually(t, "a NACK naming the codec field", func() bool {
			for _, m := range cp.nackMessages() {
				if strings.Contains(m, "field framing is not supported") {
					return true
				}
			}
			return false
		})
		cl := dialThrift(t, addr, "compact/unframed")
		if got, err := cl.call(ctx, "bye", "still"); err != nil || got != "b:bye:still" {
			t.Fatalf("after the NACK the accepted config goes on serving: %q, %v", got, err)
		}
	})
}

func statValue(t *testing.T, stats, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: (\d+)$`).FindStringSubmatch(stats)
	if m == nil {
		t.Fatalf("no stat %s", name)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
