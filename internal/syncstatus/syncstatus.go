// Package syncstatus reads mesh-pilot's view of its connected proxies: the
// per-type xDS sync state from /debug/syncz and what it sent one proxy from
// /debug/config_dump.
package syncstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"mesh.dev/mesh/internal/pilot/rollout"
)

// DebugPort is pilot's debug HTTP port.
const DebugPort = 15014

// Types are the xDS types a proxy-status table shows, in column order.
var Types = []string{"CDS", "LDS", "EDS", "RDS", "ECDS"}

// TypeStatus is what pilot sent a proxy for one xDS type and what came back.
type TypeStatus struct {
	Sent   string `json:"sent"`
	Acked  string `json:"acked"`
	Nonce  string `json:"nonce,omitempty"`
	Nack   string `json:"nack,omitempty"`
	Status string `json:"status"` // SYNCED, STALE, NOT SENT or NACK
}

// ProxyStatus is one connected proxy as /debug/syncz reports it.
type ProxyStatus struct {
	Proxy        string                `json:"proxy"`
	ClusterID    string                `json:"clusterID,omitempty"`
	IstioVersion string                `json:"istioVersion,omitempty"`
	Types        map[string]TypeStatus `json:"types"`
	// Fallback is why the proxy's pod is in sidecar fallback, "" when it
	// is not; Disconnected marks a pod in fallback whose proxy is not
	// connected to the replica that reported it (docs/fallback.md).
	Fallback     string `json:"fallback,omitempty"`
	Disconnected bool   `json:"disconnected,omitempty"`
	// Pilot is the replica that reported it; set by the caller, since
	// /debug/syncz speaks only for itself.
	Pilot string `json:"pilot,omitempty"`
}

// Name is the proxy's pod.namespace, taken from an Istio-style node id
// (TYPE~IP~POD.NAMESPACE~DOMAIN); other ids are returned whole.
func (p ProxyStatus) Name() string { return NodeName(p.Proxy) }

// NodeName returns POD.NAMESPACE from an Istio-style node id, or the id itself.
func NodeName(id string) string {
	parts := strings.Split(id, "~")
	if len(parts) == 4 && parts[2] != "" {
		return parts[2]
	}
	return id
}

// Status returns the state of one type, NOT SENT when pilot reported none.
func (p ProxyStatus) Status(typ string) TypeStatus {
	if ts, ok := p.Types[typ]; ok {
		return ts
	}
	return TypeStatus{Status: "NOT SENT"}
}

// Client calls pilot's debug endpoints.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for pilot's debug server at host:port.
func New(address string) (*Client, error) {
	if address == "" || strings.Contains(address, "/") {
		return nil, fmt.Errorf("pilot address %q: expected host:port, e.g. 127.0.0.1:15014", address)
	}
	return &Client{base: "http://" + address, http: &http.Client{Timeout: time.Minute}}, nil
}

// Syncz fetches /debug/syncz, sorted by proxy name.
func (c *Client) Syncz(ctx context.Context) ([]ProxyStatus, error) {
	body, err := c.get(ctx, "/debug/syncz")
	if err != nil {
		return nil, err
	}
	return ParseSyncz(body)
}

// ParseSyncz decodes a /debug/syncz answer.
func ParseSyncz(body []byte) ([]ProxyStatus, error) {
	var out []ProxyStatus
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode /debug/syncz: expected a JSON array of proxies: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// ConfigDump fetches what pilot sends the proxy with node id proxyID, as an Envoy config dump.
func (c *Client) ConfigDump(ctx context.Context, proxyID string) ([]byte, error) {
	return c.get(ctx, "/debug/config_dump?proxyID="+url.QueryEscape(proxyID))
}

func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pilot at %s: %w", strings.TrimPrefix(c.base, "http://"), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s%s: %s: %s", c.base, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// Rollouts fetches /debug/rolloutz: the staged releases the replica runs.
func (c *Client) Rollouts(ctx context.Context) ([]rollout.Status, error) {
	body, err := c.get(ctx, "/debug/rolloutz")
	if err != nil {
		return nil, err
	}
	var out []rollout.Status
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode /debug/rolloutz: expected a JSON array of rollouts: %w", err)
	}
	return out, nil
}

// RolloutHistory fetches the steps of one resource's rollouts (id is
// KIND/NAMESPACE/NAME).
func (c *Client) RolloutHistory(ctx context.Context, id string) ([]rollout.Event, error) {
	body, err := c.get(ctx, "/debug/rolloutz/history?resource="+url.QueryEscape(id))
	if err != nil {
		return nil, err
	}
	var out []rollout.Event
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode /debug/rolloutz/history: %w", err)
	}
	return out, nil
}
