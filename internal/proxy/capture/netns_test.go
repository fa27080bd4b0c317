package capture_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/proxy/capture"
)

// The pod address lives in the benchmarking range the sandbox uses for pod IPs.
const podIP = "198.18.0.10"

// TestMain lets this test binary act as the helper processes that run inside the namespace.
func TestMain(m *testing.M) {
	switch os.Getenv("MESH_CAPTURE_HELPER") {
	case "upstream":
		ln, err := net.Listen("tcp", podIP+":8080")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "captured=%s", r.Header.Get("X-Mesh-Captured"))
		}))
		os.Exit(0)
	case "upstream-any":
		ln, err := net.Listen("tcp", ":8080")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "captured=%s", r.Header.Get("X-Mesh-Captured"))
		}))
		os.Exit(0)
	case "proxy":
		os.Exit(runProxy())
	case "resolver", "dnsproxy", "dnsclient":
		os.Exit(dnsHelper(os.Getenv("MESH_CAPTURE_HELPER")))
	case "client":
		target := podIP
		if t := os.Getenv("MESH_CAPTURE_TARGET"); t != "" {
			target = t
		}
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + target + ":8080/")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(resp.Body)
		fmt.Print(string(b))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runProxy serves Istio's outbound capture listener: 15001 with use_original_dst, passing through to ORIGINAL_DST.
func runProxy() int {
	router, _ := anypb.New(&routerv3.Router{})
	h, _ := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_15001",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
			Name: "allow_any", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:               &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action:              &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "PassthroughCluster"}}},
				RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-mesh-captured", Value: "%DOWNSTREAM_LOCAL_ADDRESS%"}}},
			}}}}}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}}})
	b := &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: "sidecar~" + podIP + "~app-1.default~default.svc.cluster.local"},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{{Name: "virtualOutbound", UseOriginalDst: wrapperspb.Bool(true),
				Address:      &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001}}}},
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: h}}}}}}},
			Clusters: []*clusterv3.Cluster{{Name: "PassthroughCluster", ConnectTimeout: durationpb.New(time.Second),
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}, LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED}},
		}}
	p, err := agent.New(agent.Options{Bootstrap: b})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := p.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {}
}

func TestRulesExcludeTheProxyAndRedirect(t *testing.T) {
	r := capture.Default().Rules()
	for _, want := range []string{
		"-A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN",
		"-A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
		"-A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
		"-A MESH_INBOUND -p tcp --dport 15021 -j RETURN",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("rules lack %q:\n%s", want, r)
		}
	}
	if err := (capture.Config{OutboundPort: 15001, InboundPort: 0}).Validate(); err == nil {
		t.Error("inbound port 0 accepted")
	}
}

// TestTransparentCaptureInNetworkNamespace applies the init rules in a namespace
// made here, and checks that a plain client's connection to a pod address is
// redirected through the proxy, which finds the original destination with
// SO_ORIGINAL_DST and passes it on; and that what Istio's traffic
// annotations leave out (destination ranges, ports) goes straight to the
// app, the proxy never seeing it.
func TestTransparentCaptureInNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "iptables-restore", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y iptables iproute2 util-linux)", tool)
		}
	}
	through := "captured=" + podIP + ":8080" // the proxy's header: the original destination it recovered
	direct := "captured="                    // the upstream answered a request the proxy never saw
	with := func(f func(*capture.Config)) capture.Config { c := capture.Default(); f(&c); return c }
	for i, tc := range []struct {
		name string
		c    capture.Config
		want string
	}{
		{"default", capture.Default(), through},
		{"excludeOutboundIPRanges", with(func(c *capture.Config) { c.ExcludeOutboundCIDR = []string{podIP + "/32"} }), direct},
		{"excludeOutboundPorts", with(func(c *capture.Config) { c.ExcludeOutboundPorts = []int{8080} }), direct},
		{"includeOutboundIPRanges elsewhere", with(func(c *capture.Config) { c.IncludeOutboundCIDR = []string{"198.19.0.0/16"} }), direct},
		{"includeOutboundIPRanges here", with(func(c *capture.Config) { c.IncludeOutboundCIDR = []string{"198.18.0.0/16"} }), through},
		{"includeOutboundPorts over an excluded range", with(func(c *capture.Config) {
			c.ExcludeOutboundCIDR = []string{podIP + "/32"}
			c.IncludeOutboundPorts = []int{8080}
		}), through},
		{"no outbound capture", with(func(c *capture.Config) { c.IncludeOutboundCIDR = nil }), direct},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := captureInNamespace(t, fmt.Sprintf("meshcap-%d-%d", os.Getpid(), i), tc.c); got != tc.want {
				t.Fatalf("client in the namespace got %q (%v); want %q\n%s", got, err, tc.want, tc.c.Rules())
			}
		})
	}
}

// captureInNamespace applies c in a new namespace ns holding the upstream
// app and the proxy, and returns what a plain client there gets from the app.
func captureInNamespace(t *testing.T, ns string, c capture.Config) (string, error) {
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "addr", "add", podIP+"/32", "dev", "lo")
	if err := c.Apply(context.Background(), "ip", "netns", "exec", ns); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func(role string, pre ...string) {
		args := append(append([]string{"netns", "exec", ns}, pre...), self)
		cmd := exec.Command("ip", args...)
		cmd.Env = append(os.Environ(), "MESH_CAPTURE_HELPER="+role)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	start("upstream")
	// The proxy runs with the proxy group, so the rules let its own dials through.
	start("proxy", "setpriv", "--regid=1337", "--clear-groups")
	// The proxy is up once its listener answers; only then can "direct" mean the proxy was passed by.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if exec.Command("ip", "netns", "exec", ns, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/15001").Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not listen on 15001 in 15 s")
		}
	}
	var out []byte
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		cmd := exec.Command("ip", "netns", "exec", ns, self)
		cmd.Env = append(os.Environ(), "MESH_CAPTURE_HELPER=client")
		out, err = cmd.Output()
		if err == nil && strings.HasPrefix(string(out), "captured=") {
			break
		}
	}
	return string(out), err
}

// TestFallbackKeepsMTLSDestinationsCaptured: with the pod's capture rules
// in place and its proxy dead, the fallback rules send new connections
// straight to their destination, except to the addresses kept captured
// (they require mTLS): those are still redirected to the dead proxy's
// port and refused, never sent in plaintext. The proxy's own connections
// to a kept address are not looped back (the capture's owner exclusion
// still applies). Replacing the kept set takes effect for new
// connections; switching fallback off restores capture for all. Service
// addresses translated after the capture (OUTPUT's later rules) still are.
func TestFallbackKeepsMTLSDestinationsCaptured(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y iptables iproute2 util-linux)", tool)
		}
	}
	const mutualIP = "198.18.0.11" // a destination that requires mTLS
	ns := fmt.Sprintf("meshfb-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "addr", "add", podIP+"/32", "dev", "lo")
	run("ip", "-n", ns, "addr", "add", mutualIP+"/32", "dev", "lo")
	netns := []string{"ip", "netns", "exec", ns}
	ctx := context.Background()
	if err := capture.Default().Apply(ctx, netns...); err != nil {
		t.Fatal(err)
	}
	// Two Service addresses translated after the capture, in OUTPUT, as the
	// sandbox runtime's Service rules (or a kube-proxy in the namespace)
	// are: one to the plain upstream, one to the one requiring mTLS.
	const plainSvc, mutualSvc = "198.18.0.20", "198.18.0.21"
	run("ip", "-n", ns, "route", "add", plainSvc+"/31", "dev", "lo") // routed, as a cluster IP range is
	run("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", plainSvc+"/32", "-p", "tcp", "-j", "DNAT", "--to-destination", podIP)
	run("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", mutualSvc+"/32", "-p", "tcp", "-j", "DNAT", "--to-destination", mutualIP)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	up := exec.Command("ip", "netns", "exec", ns, self)
	up.Env = append(os.Environ(), "MESH_CAPTURE_HELPER=upstream-any")
	up.Stderr = os.Stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Process.Kill(); up.Wait() })
	// get runs a client in the namespace (as the proxy's group with
	// asProxy) and returns what it got from target:8080.
	get := func(target string, asProxy bool) string {
		args := append(append([]string{}, netns...), self)
		if asProxy {
			args = append(append(append([]string{}, netns...), "setpriv", "--regid=1337", "--clear-groups"), self)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "MESH_CAPTURE_HELPER=client", "MESH_CAPTURE_TARGET="+target)
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	// The upstream listens once the proxy's group, whose dials capture
	// leaves alone, reaches it.
	for deadline := time.Now().Add(15 * time.Second); get(podIP, true) != "captured="; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the upstream did not answer in 15 s")
		}
	}
	refused := func(got string) bool { return strings.HasPrefix(got, "error:") && strings.Contains(got, "refused") }
	if got := get(podIP, false); !refused(got) {
		t.Fatalf("before fallback, with no proxy on 15001: got %q, want refused", got)
	}

	keep := []netip.Addr{netip.MustParseAddr(mutualIP), netip.MustParseAddr(mutualSvc)}
	if err := capture.SetFallback(ctx, true, keep, netns...); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{podIP, plainSvc} {
		if got := get(to, false); got != "captured=" {
			t.Errorf("in fallback, to %s: got %q, want served directly", to, got)
		}
	}
	for _, to := range []string{mutualIP, mutualSvc} {
		if got := get(to, false); !refused(got) {
			t.Errorf("in fallback, to the kept %s: got %q, want refused (captured, the proxy dead)", to, got)
		}
	}
	if got := get(mutualIP, true); got != "captured=" {
		t.Errorf("in fallback, the proxy's own dial to the kept %s: got %q, want it not redirected", mutualIP, got)
	}
	if on, err := capture.FallbackActive(ctx, netns...); err != nil || !on {
		t.Errorf("FallbackActive = %v, %v in fallback", on, err)
	}

	// The kept set replaced (the policy gone): direct there too.
	if err := capture.SetFallback(ctx, true, nil, netns...); err != nil {
		t.Fatal(err)
	}
	if got := get(mutualIP, false); got != "captured=" {
		t.Errorf("kept set emptied, to %s: got %q, want served directly", mutualIP, got)
	}
	if err := capture.SetFallback(ctx, true, keep, netns...); err != nil {
		t.Fatal(err)
	}
	if got := get(mutualIP, false); !refused(got) {
		t.Errorf("kept again, to %s: got %q, want refused", mutualIP, got)
	}

	if err := capture.SetFallback(ctx, false, nil, netns...); err != nil {
		t.Fatal(err)
	}
	if got := get(podIP, false); !refused(got) {
		t.Errorf("after fallback, to %s: got %q, want refused (captured again)", podIP, got)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), capture.FallbackChain) || strings.Contains(string(out), capture.FallbackComment) {
		t.Errorf("fallback rules left after switching off:\n%s", out)
	}
	if err := capture.SetFallback(ctx, false, nil, netns...); err != nil {
		t.Errorf("switching off twice: %v", err)
	}
}
