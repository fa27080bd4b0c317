package capture_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
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
	case "proxy":
		os.Exit(runProxy())
	case "client":
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + podIP + ":8080/")
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
