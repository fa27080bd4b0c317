// Package adminclient talks to an Envoy-compatible admin API (a real Envoy
// or mesh-proxy): config dumps, cluster status and log levels, over plain
// HTTP or through a Kubernetes port-forward.
package adminclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// DefaultPort is the proxy admin port inside a pod.
const DefaultPort = 15000

// maxBody bounds what is read from an admin endpoint; real dumps of very
// large meshes reach a few hundred MB, so this is generous on purpose.
const maxBody = 2 << 30

// Client calls one proxy's admin API.
type Client struct {
	base *url.URL
	http *http.Client
}

// New returns a client for the admin API at address, given as host:port or as an http:// URL.
func New(address string) (*Client, error) {
	raw := address
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("admin address %q: expected host:port, e.g. 127.0.0.1:15000", address)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("admin address %q: scheme must be http or https", address)
	}
	return &Client{base: u, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// Address returns the admin API's host:port.
func (c *Client) Address() string { return c.base.Host }

// ConfigDump fetches /config_dump; includeEDS adds the endpoint assignments.
func (c *Client) ConfigDump(ctx context.Context, includeEDS bool) ([]byte, error) {
	q := url.Values{}
	if includeEDS {
		q.Set("include_eds", "")
	}
	return c.do(ctx, http.MethodGet, "/config_dump", q)
}

// Clusters fetches /clusters?format=json: every cluster's hosts with live health.
func (c *Client) Clusters(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/clusters", url.Values{"format": {"json"}})
}

// NodeID returns the proxy's node id from /server_info, which Envoy and
// mesh-proxy both answer even when the config dump carries no bootstrap.
func (c *Client) NodeID(ctx context.Context) (string, error) {
	body, err := c.do(ctx, http.MethodGet, "/server_info", nil)
	if err != nil {
		return "", err
	}
	var info adminv3.ServerInfo
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &info); err != nil {
		return "", fmt.Errorf("decode /server_info: %w", err)
	}
	return info.GetNode().GetId(), nil
}

// Loggers returns the proxy's log level per logger. Envoy answers this on
// POST /logging (a GET is refused as /logging can change state).
func (c *Client) Loggers(ctx context.Context) (map[string]string, error) {
	body, err := c.do(ctx, http.MethodPost, "/logging", nil)
	if err != nil {
		return nil, err
	}
	return ParseLoggers(body), nil
}

// SetLogLevel sets logger to level, or every logger when logger is "", and
// returns the levels afterwards.
func (c *Client) SetLogLevel(ctx context.Context, logger, level string) (map[string]string, error) {
	q := url.Values{}
	if logger == "" {
		q.Set("level", level)
	} else {
		q.Set(logger, level)
	}
	body, err := c.do(ctx, http.MethodPost, "/logging", q)
	if err != nil {
		return nil, err
	}
	return ParseLoggers(body), nil
}

// ParseLoggers reads Envoy's "active loggers:" listing ("  name: level" per line).
func ParseLoggers(body []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, " ") {
			continue
		}
		name, level, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[strings.TrimSpace(name)] = strings.TrimSpace(level)
		}
	}
	return out
}

// SortedLoggers returns the logger names of m in order.
func SortedLoggers(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HTTPError is a non-2xx answer from the admin API.
type HTTPError struct {
	URL    string
	Status string
	Body   string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.URL, e.Status)
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	// Envoy takes flags such as include_eds without a value; Encode would
	// write "include_eds=", which Envoy also accepts.
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u.String(), err)
	}
	if resp.StatusCode/100 != 2 {
		if len(body) > 512 {
			body = body[:512]
		}
		return nil, &HTTPError{URL: u.String(), Status: resp.Status, Body: string(body)}
	}
	return body, nil
}
