package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// sidecarPair is a proxy with an inbound listener (to the app) and an
// outbound one (to a service elsewhere), as pilot's sidecar config has them.
func sidecarPair(t *testing.T) (p *Proxy, in, out uint32) {
	t.Helper()
	app := startUpstream(t, "app", nil)
	ext := startUpstream(t, "ext", nil)
	cp := startControlPlane(t, "")
	in, out = freePort(t), freePort(t)
	inL := httpListener(t, "virtualInbound", in, "in")
	inL.TrafficDirection = corev3.TrafficDirection_INBOUND
	outL := httpListener(t, "outbound", out, "out")
	outL.TrafficDirection = corev3.TrafficDirection_OUTBOUND
	all := func(name, cluster string) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo(cluster)}}}}}
	}
	cp.set(map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {inL, outL},
		resourcev3.RouteType:    {all("in", "app"), all("out", "ext")},
		resourcev3.ClusterType:  {edsCluster("app"), edsCluster("ext")},
		resourcev3.EndpointType: {cla("app", app), cla("ext", ext)},
	})
	p = startProxy(t, cp.addr)
	for _, port := range []uint32{in, out} {
		eventually(t, "both listeners serving", func() bool { return answers(port) == nil })
	}
	return p, in, out
}

// answers makes one request on a new connection; nil when it got a 200.
func answers(port uint32) error {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url(port, "/"))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestTerminateKeepsOutboundOpen: after SIGTERM's handling starts the
// proxy refuses new inbound connections at once but goes on taking new
// outbound ones, for the app that is shutting down too, until the drain
// ends (here by /quitquitquit); then outbound is closed as well.
func TestTerminateKeepsOutboundOpen(t *testing.T) {
	p, in, out := sidecarPair(t)
	done := make(chan struct{})
	go func() { defer close(done); p.Terminate(context.Background(), Termination{Drain: time.Hour}) }()
	eventually(t, "inbound refused after SIGTERM", func() bool { return answers(in) != nil })
	for i := 0; i < 5; i++ {
		if err := answers(out); err != nil {
			t.Fatalf("outbound call %d while draining: %v; want it served until the drain ends", i, err)
		}
	}
	if st := p.State(); st.String() != "DRAINING" {
		t.Errorf("state %s while terminating, want DRAINING (readiness failing)", st)
	}
	select {
	case <-done:
		t.Fatal("Terminate returned before terminationDrainDuration or a quit")
	default:
	}
	p.closeQuit()
	<-done
	if err := answers(out); err == nil {
		t.Error("outbound still served after the drain ended")
	}
}

// TestExitOnZeroActiveConnections: with EXIT_ON_ZERO_ACTIVE_CONNECTIONS the
// proxy exits once the last downstream connection has closed, not after a
// fixed drain, and not while one is open.
func TestExitOnZeroActiveConnections(t *testing.T) {
	p, _, out := sidecarPair(t)
	// A keep-alive connection through the outbound listener, left open.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", out))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: ext\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on the kept connection: %v %v", resp, err)
	}
	resp.Body.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Terminate(context.Background(), Termination{Drain: time.Hour, ExitOnZero: true})
	}()
	// Three checks of the count, a second apart, see the open connection.
	time.Sleep(3 * time.Second)
	select {
	case <-done:
		t.Fatal("exited with a connection still open")
	default:
	}
	if n := p.Listeners.ActiveConnections(); n != 1 {
		t.Errorf("active connections %d, want the kept one", n)
	}
	conn.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("not exited after the last connection closed (active %d)", p.Listeners.ActiveConnections())
	}
}

func TestTerminationFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	got, err := terminationFromEnv(env())
	if err != nil || got != (Termination{Drain: 5 * time.Second, Minimum: 5 * time.Second}) {
		t.Errorf("defaults %+v %v, want Istio's 5s and 5s", got, err)
	}
	got, err = terminationFromEnv(env(TerminationDrainEnv, "20", ExitOnZeroEnv, "true", MinimumDrainEnv, "1s"))
	if err != nil || got != (Termination{Drain: 20 * time.Second, ExitOnZero: true, Minimum: time.Second}) {
		t.Errorf("%+v %v", got, err)
	}
	for _, kv := range [][2]string{{TerminationDrainEnv, "5s"}, {TerminationDrainEnv, "-1"}, {ExitOnZeroEnv, "yes"}, {MinimumDrainEnv, "5"}} {
		if _, err := terminationFromEnv(env(kv[0], kv[1])); err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: err %v, want one naming the variable", kv[0], kv[1], err)
		}
	}
}

func TestStatusQuitOnlyFromThePod(t *testing.T) {
	p := &Proxy{quit: make(chan struct{})}
	for _, tc := range []struct {
		method, remote string
		code           int
	}{
		{http.MethodGet, "127.0.0.1:4000", http.StatusMethodNotAllowed},
		{http.MethodPost, "10.1.2.3:4000", http.StatusForbidden},
		{http.MethodPost, "127.0.0.1:4000", http.StatusOK},
	} {
		r := httptest.NewRequest(tc.method, "/quitquitquit", nil)
		r.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		p.statusQuit(w, r)
		if w.Code != tc.code {
			t.Errorf("%s from %s: %d, want %d", tc.method, tc.remote, w.Code, tc.code)
		}
		select {
		case <-p.quit:
			if tc.code != http.StatusOK {
				t.Errorf("%s from %s quit the proxy", tc.method, tc.remote)
			}
		default:
			if tc.code == http.StatusOK {
				t.Error("POST from localhost did not quit the proxy")
			}
		}
	}
}
