package appprobe

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Server answers /app-health/ paths by running the original probe against
// the app. Its answer is only a status code, as Istio's agent gives: the
// app's own for HTTP probes (so the kubelet's 200-399 rule decides as it would
// have), 200 or 500 for TCP and gRPC ones, 404 for a path no probe was
// rewritten to.
type Server struct {
	Probers Probers
	// Host is where the app is probed: the pod IP (Istio's default; an app
	// listening only on it is reached, as the kubelet would reach it) or
	// localhost. A probe's own host field wins.
	Host string
	Log  *slog.Logger
}

// defaultTimeout is Kubernetes' default probe timeout.
const defaultTimeout = time.Second

// client does not follow redirects: the kubelet decides on the code, and a
// Location pointing into the pod would mean nothing to it.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		// The kubelet does not verify an app's certificate either.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ServeHTTP runs the probe registered for the request's path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := s.Probers[r.URL.Path]
	if !ok {
		http.Error(w, "no app probe at "+r.URL.Path, http.StatusNotFound)
		return
	}
	timeout := defaultTimeout
	if p.TimeoutSeconds > 0 {
		timeout = time.Duration(p.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	code, err := s.run(ctx, r, p)
	if err != nil {
		if s.Log != nil {
			s.Log.Debug("app probe failed", "path", r.URL.Path, "err", err)
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(code)
}

func (s *Server) host(h string) string {
	if h != "" {
		return h
	}
	if s.Host != "" {
		return s.Host
	}
	return "localhost"
}

func (s *Server) run(ctx context.Context, in *http.Request, p Prober) (int, error) {
	switch {
	case p.HTTPGet != nil:
		return s.httpGet(ctx, in, p.HTTPGet)
	case p.TCPSocket != nil:
		addr := net.JoinHostPort(s.host(p.TCPSocket.Host), strconv.Itoa(int(p.TCPSocket.Port)))
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return http.StatusInternalServerError, fmt.Errorf("tcp %s: %w", addr, err)
		}
		c.Close()
		return http.StatusOK, nil
	case p.GRPC != nil:
		return s.grpc(ctx, p.GRPC)
	}
	return http.StatusInternalServerError, fmt.Errorf("probe has no handler")
}

func (s *Server) httpGet(ctx context.Context, in *http.Request, h *HTTPGet) (int, error) {
	scheme := "http"
	if strings.EqualFold(h.Scheme, "HTTPS") {
		scheme = "https"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(s.host(h.Host), strconv.Itoa(int(h.Port))) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	// The kubelet's own headers (its User-Agent kube-probe/<version>, Accept) go on, then the probe's.
	for _, k := range []string{"User-Agent", "Accept"} {
		if v := in.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return http.StatusInternalServerError, fmt.Errorf("GET %s: %w", url, err)
	}
	// The body is dropped, as Istio's agent drops it; reading a little lets the app finish its write.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *Server) grpc(ctx context.Context, g *GRPC) (int, error) {
	addr := net.JoinHostPort(s.host(""), strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return http.StatusInternalServerError, fmt.Errorf("grpc %s: %w", addr, err)
	}
	defer conn.Close()
	svc := ""
	if g.Service != nil {
		svc = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		return http.StatusInternalServerError, fmt.Errorf("grpc health check %s (service %q): %w", addr, svc, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return http.StatusInternalServerError, fmt.Errorf("grpc health check %s (service %q): %s", addr, svc, st)
	}
	return http.StatusOK, nil
}
