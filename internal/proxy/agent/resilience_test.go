package agent

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func one(t *testing.T, port uint32, routes []*routev3.Route, filters []*hcmv3.HttpFilter, clusters ...*clusterv3.Cluster) *Proxy {
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: routes}}
	return staticProxy(t, []*listenerv3.Listener{inlineListener(t, port, vhs, filters...)}, clusters...)
}

func action(cluster string, mod func(*routev3.RouteAction)) *routev3.Route_Route {
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	mod(a)
	return &routev3.Route_Route{Route: a}
}

func TestRouteTimeoutAnswers504(t *testing.T) {
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	port := freePort(t)
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: action("slow", func(a *routev3.RouteAction) { a.Timeout = durationpb.New(100 * time.Millisecond) })}}, nil, staticCluster("slow", slow))
	resp, body := get(t, url(port, "/"))
	if resp.StatusCode != http.StatusGatewayTimeout || body != "upstream request timeout" {
		t.Fatalf("slow upstream behind a 100ms route timeout: %d %q; want 504 upstream request timeout", resp.StatusCode, body)
	}
}

func TestRetriesOn5xxAndPerTryTimeout(t *testing.T) {
	var n atomic.Int64
	flaky := startUpstream(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if n.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		w.Write(b)
	})
	var m atomic.Int64
	hang := startUpstream(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		if m.Add(1) == 1 {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "second try")
	})
	port := freePort(t)
	retry := func(num uint32, perTry time.Duration) func(*routev3.RouteAction) {
		return func(a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,connect-failure", NumRetries: wrapperspb.UInt32(num),
				RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
			if perTry > 0 {
				a.RetryPolicy.PerTryTimeout = durationpb.New(perTry)
			}
		}
	}
	one(t, port, []*routev3.Route{
		{Match: prefix("/noretry"), Action: action("flaky", func(*routev3.RouteAction) {})},
		{Match: prefix("/retry"), Action: action("flaky", retry(3, 0))},
		{Match: prefix("/pertry"), Action: action("hang", retry(1, 100*time.Millisecond))},
	}, nil, staticCluster("flaky", flaky), staticCluster("hang", hang))
	if resp, _ := get(t, url(port, "/noretry")); resp.StatusCode != 503 {
		t.Fatalf("without a retry policy the first 503 should pass through, got %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, url(port, "/retry"), strings.NewReader("payload"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "payload" || n.Load() != 3 {
		t.Fatalf("retry_on 5xx: %d %q after %d upstream attempts; want 200 with the replayed body after 3", resp.StatusCode, body, n.Load())
	}
	if resp, body := get(t, url(port, "/pertry")); resp.StatusCode != 200 || body != "second try" {
		t.Fatalf("per_try_timeout: %d %q; want the second attempt's answer", resp.StatusCode, body)
	}
}

func faultFilter(t *testing.T, f *faultv3.HTTPFault) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, f)}}
}

func TestFaultInjectionAbortByPercentageAndDelay(t *testing.T) {
	a := startUpstream(t, "a", nil)
	port := freePort(t)
	fault := &faultv3.HTTPFault{
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
			Percentage: &typev3.FractionalPercent{Numerator: 50, Denominator: typev3.FractionalPercent_HUNDRED}},
	}
	delayOnly := &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(150 * time.Millisecond)},
		Percentage: &typev3.FractionalPercent{Numerator: 100}}}
	p := one(t, port, []*routev3.Route{
		{Match: prefix("/delay"), Action: routeTo("a"), TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, delayOnly)}},
		{Match: prefix("/"), Action: routeTo("a")},
	}, []*hcmv3.HttpFilter{faultFilter(t, fault)}, staticCluster("a", a))
	aborted := 0
	for i := 0; i < 400; i++ {
		resp, body := get(t, url(port, "/"))
		switch {
		case resp.StatusCode == 503 && body == "fault filter abort":
			aborted++
		case resp.StatusCode != 200:
			t.Fatalf("unexpected %d %q", resp.StatusCode, body)
		}
	}
	if aborted < 140 || aborted > 260 {
		t.Fatalf("50%% abort fault aborted %d of 400 requests", aborted)
	}
	start := time.Now()
	resp, body := get(t, url(port, "/delay"))
	if took := time.Since(start); resp.StatusCode != 200 || body != "a" || took < 150*time.Millisecond {
		t.Fatalf("100%% 150ms delay: %d %q after %v; want 200 a after at least 150ms", resp.StatusCode, body, took)
	}
	_ = p
}

func TestRequestMirroring(t *testing.T) {
	a := startUpstream(t, "a", nil)
	shadowHosts := make(chan string, 10)
	shadow := startUpstream(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		shadowHosts <- r.Host + " " + r.URL.Path
		w.WriteHeader(500) // ignored by the proxy
	})
	port := freePort(t)
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: action("a", func(ra *routev3.RouteAction) {
		ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}}
	})}}, nil, staticCluster("a", a), staticCluster("shadow", shadow))
	resp, body := get(t, url(port, "/orders"), "Host", "shop")
	if resp.StatusCode != 200 || body != "a" {
		t.Fatalf("primary answer: %d %q", resp.StatusCode, body)
	}
	select {
	case got := <-shadowHosts:
		if got != "shop-shadow /orders" {
			t.Fatalf("mirror saw %q; want host shop-shadow and path /orders", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the mirror cluster never received the copy")
	}
}

func TestCircuitBreakerMaxRequests(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	blocker := startUpstream(t, "blocker", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	port := freePort(t)
	c := staticCluster("b", blocker)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(1)}}}
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("b")}}, nil, c)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); get(t, url(port, "/")) }()
	<-entered
	resp, _ := get(t, url(port, "/"))
	close(release)
	wg.Wait()
	if resp.StatusCode != 503 || resp.Header.Get("X-Envoy-Overloaded") != "true" {
		t.Fatalf("second concurrent request with max_requests=1: %d overloaded=%q; want 503 true", resp.StatusCode, resp.Header.Get("X-Envoy-Overloaded"))
	}
}

func TestOutlierDetectionEjectsFailingHost(t *testing.T) {
	good := startUpstream(t, "good", nil)
	bad := startUpstream(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	port := freePort(t)
	c := staticCluster("pool", good, bad)
	c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3), BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionPercent: wrapperspb.UInt32(50)}
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("pool")}}, nil, c)
	for i := 0; i < 10; i++ {
		get(t, url(port, "/"))
	}
	for i := 0; i < 20; i++ {
		if resp, body := get(t, url(port, "/")); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d after the bad host should be ejected: %d %q", i, resp.StatusCode, body)
		}
	}
}

func TestActiveHealthCheckRemovesUnhealthyHost(t *testing.T) {
	good := startUpstream(t, "good", nil)
	sick := startUpstream(t, "sick", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "sick")
	})
	port := freePort(t)
	c := staticCluster("pool", good, sick)
	c.HealthChecks = []*corev3.HealthCheck{{
		Timeout: durationpb.New(time.Second), Interval: durationpb.New(50 * time.Millisecond),
		UnhealthyThreshold: wrapperspb.UInt32(1), HealthyThreshold: wrapperspb.UInt32(1),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{Path: "/healthz"}},
	}}
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("pool")}}, nil, c)
	eventually(t, "the sick host to leave rotation", func() bool {
		for i := 0; i < 10; i++ {
			if _, body := get(t, url(port, "/")); body != "good" {
				return false
			}
		}
		return true
	})
}

func TestRingHashIsSticky(t *testing.T) {
	ups := []*upstream{startUpstream(t, "h1", nil), startUpstream(t, "h2", nil), startUpstream(t, "h3", nil)}
	port := freePort(t)
	c := staticCluster("ring", ups...)
	c.LbPolicy = clusterv3.Cluster_RING_HASH
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: action("ring", func(a *routev3.RouteAction) {
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
	})}}, nil, c)
	distinct := map[string]bool{}
	for u := 0; u < 30; u++ {
		user := "user-" + string(rune('a'+u))
		_, first := get(t, url(port, "/"), "x-user", user)
		distinct[first] = true
		for i := 0; i < 5; i++ {
			if _, body := get(t, url(port, "/"), "x-user", user); body != first {
				t.Fatalf("%s went to %s then %s; ring hash must be sticky", user, first, body)
			}
		}
	}
	if len(distinct) < 2 {
		t.Fatalf("30 users all landed on %v; the ring should spread them", distinct)
	}
}

func TestLeastRequestAvoidsBusyHost(t *testing.T) {
	hold := make(chan struct{})
	busy := startUpstream(t, "busy", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-hold") != "" {
			<-hold
		}
		io.WriteString(w, "busy")
	})
	idle := startUpstream(t, "idle", nil)
	port := freePort(t)
	c := staticCluster("lr", busy, idle)
	c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("lr")}}, nil, c)
	// Park requests on the busy host: each lands on one host; retry until 5 are held there.
	var wg sync.WaitGroup
	var held atomic.Int64
	for held.Load() < 5 {
		wg.Add(1)
		done := make(chan string, 1)
		go func() {
			defer wg.Done()
			_, body := get(t, url(port, "/"), "x-hold", "1")
			done <- body
		}()
		select {
		case <-done:
		case <-time.After(300 * time.Millisecond):
			held.Add(1)
		}
	}
	idleHits := 0
	for i := 0; i < 100; i++ {
		if _, body := get(t, url(port, "/")); body == "idle" {
			idleHits++
		}
	}
	close(hold)
	wg.Wait()
	if idleHits < 60 {
		t.Fatalf("least request sent only %d of 100 requests to the idle host while the other had 5 in flight", idleHits)
	}
}

func TestPriorityFailoverAndLocalityWeights(t *testing.T) {
	p0 := startUpstream(t, "p0", nil)
	p1 := startUpstream(t, "p1", nil)
	z1 := startUpstream(t, "z1", nil)
	z3 := startUpstream(t, "z3", nil)
	port := freePort(t)
	ep := func(u *upstream, hs corev3.HealthStatus) *endpointv3.LbEndpoint {
		return &endpointv3.LbEndpoint{HealthStatus: hs, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", u.port())}}}
	}
	failover := &clusterv3.Cluster{Name: "failover", ConnectTimeout: durationpb.New(time.Second), ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "failover", Endpoints: []*endpointv3.LocalityLbEndpoints{
			{Priority: 0, LbEndpoints: []*endpointv3.LbEndpoint{ep(p0, corev3.HealthStatus_UNHEALTHY)}},
			{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{ep(p1, corev3.HealthStatus_HEALTHY)}},
		}}}
	zones := &clusterv3.Cluster{Name: "zones", ConnectTimeout: durationpb.New(time.Second), ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "zones", Endpoints: []*endpointv3.LocalityLbEndpoints{
			{Locality: &corev3.Locality{Zone: "z1"}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: []*endpointv3.LbEndpoint{ep(z1, corev3.HealthStatus_HEALTHY)}},
			{Locality: &corev3.Locality{Zone: "z3"}, LoadBalancingWeight: wrapperspb.UInt32(3), LbEndpoints: []*endpointv3.LbEndpoint{ep(z3, corev3.HealthStatus_HEALTHY)}},
		}}}
	one(t, port, []*routev3.Route{{Match: prefix("/failover"), Action: routeTo("failover")}, {Match: prefix("/"), Action: routeTo("zones")}}, nil, failover, zones)
	for i := 0; i < 10; i++ {
		if _, body := get(t, url(port, "/failover")); body != "p1" {
			t.Fatalf("priority 0 is unhealthy; traffic should fail over to priority 1, got %q", body)
		}
	}
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		_, body := get(t, url(port, "/"))
		counts[body]++
	}
	if share := float64(counts["z3"]) / 4; share < 65 || share > 85 {
		t.Fatalf("locality weights 1:3 gave %v; want z3 near 75%%", counts)
	}
}
