package appprobe

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestServerProbesTheApp runs each kind of prober against real apps on
// loopback, through the agent's handler on a real socket, as the kubelet
// would call it.
func TestServerProbesTheApp(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			if r.Header.Get("X-Probe") != "yes" || r.Header.Get("User-Agent") != "kube-probe/1.34" {
				http.Error(w, "headers "+fmt.Sprint(r.Header), http.StatusBadRequest)
				return
			}
			w.Write([]byte("body the kubelet never sees"))
		case "/moved":
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := port(t, closed.Addr().String())
	closed.Close()

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("shop.Stock", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(gl)
	defer gs.Stop()

	appPort := Port(port(t, app.Listener.Addr().String()))
	grpcPort := Port(port(t, gl.Addr().String()))
	cart, stock := "shop.Cart", "shop.Stock"
	probers := Probers{
		"/app-health/web/readyz":    {HTTPGet: &HTTPGet{Path: "/ready", Port: appPort, HTTPHeaders: []Header{{Name: "X-Probe", Value: "yes"}}}},
		"/app-health/web/livez":     {HTTPGet: &HTTPGet{Path: "down", Port: appPort}},
		"/app-health/web/startupz":  {HTTPGet: &HTTPGet{Path: "/moved", Port: appPort}},
		"/app-health/db/readyz":     {TCPSocket: &TCPSocket{Port: appPort}},
		"/app-health/db/livez":      {TCPSocket: &TCPSocket{Port: Port(closedPort)}},
		"/app-health/cart/readyz":   {GRPC: &GRPC{Port: grpcPort, Service: &cart}},
		"/app-health/cart/livez":    {GRPC: &GRPC{Port: grpcPort}},
		"/app-health/stock/readyz":  {GRPC: &GRPC{Port: grpcPort, Service: &stock}},
		"/app-health/gone/startupz": {GRPC: &GRPC{Port: Port(closedPort)}},
	}
	// Through the environment variable, as the injector hands them over.
	env, err := probers.Encode()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	agent := httptest.NewServer(&Server{Probers: parsed, Host: "127.0.0.1"})
	defer agent.Close()

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/app-health/web/readyz", 200},
		{"/app-health/web/livez", 503},
		{"/app-health/web/startupz", 302},
		{"/app-health/db/readyz", 200},
		{"/app-health/db/livez", 500},
		{"/app-health/cart/readyz", 200},
		{"/app-health/cart/livez", 200}, // the server's overall health: "" is SERVING by default
		{"/app-health/stock/readyz", 500},
		{"/app-health/gone/startupz", 500},
		{"/app-health/nobody/readyz", 404},
	} {
		req, _ := http.NewRequest(http.MethodGet, agent.URL+tc.path, nil)
		req.Header.Set("User-Agent", "kube-probe/1.34")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
		if resp.Header.Get("Location") != "" {
			t.Errorf("%s: the app's Location header reached the kubelet", tc.path)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{`, EnvVar},
		{`{"/healthz/web/readyz":{"tcpSocket":{"port":80}}}`, `"/healthz/web/readyz": want /app-health/<container>/livez`},
		{`{"/app-health/web/ready":{"tcpSocket":{"port":80}}}`, "livez, readyz or startupz"},
		{`{"/app-health/web/readyz":{}}`, "exactly one of httpGet, tcpSocket and grpc, got 0"},
		{`{"/app-health/web/readyz":{"tcpSocket":{"port":80},"httpGet":{"port":80}}}`, "got 2"},
		{`{"/app-health/web/readyz":{"httpGet":{"port":"http"}}}`, "named port must be resolved"},
		{`{"/app-health/web/readyz":{"grpc":{"port":70000}}}`, "port 70000"},
		{`{"/app-health/web/readyz":{"httpGet":{"port":80,"scheme":"FTP"}}}`, `scheme "FTP"`},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	if ps, err := Parse(` `); err != nil || len(ps) != 0 {
		t.Errorf("empty value: %v %v", ps, err)
	}
	// Istio's own injector writes the port as a number and the whole probe.
	ps, err := Parse(`{"/app-health/web/livez":{"httpGet":{"path":"/foo","port":8001,"scheme":"HTTP"},"timeoutSeconds":3}}`)
	if err != nil || ps["/app-health/web/livez"].HTTPGet.Port != 8001 || ps["/app-health/web/livez"].TimeoutSeconds != 3 {
		t.Errorf("Istio's format: %+v %v", ps, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"/app-health/web/readyz":{"httpGet":{"path":"/r","port":8080}}}`)
	f.Add(`{"/app-health/a/livez":{"grpc":{"port":"9090","service":"x"}}}`)
	f.Fuzz(func(t *testing.T, in string) {
		ps, err := Parse(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), EnvVar) {
				t.Errorf("error does not name %s: %v", EnvVar, err)
			}
			return
		}
		// What is accepted survives the round trip the injector and agent make.
		enc, err := ps.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(enc); err != nil {
			t.Errorf("own encoding rejected: %v (%s)", err, enc)
		}
	})
}
