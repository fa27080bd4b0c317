// Package kube is mesh's way of talking to a cluster: client construction,
// server-side apply with mesh's own field manager, discovery and readiness
// checks that explain what is not ready.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the server-side apply field manager that owns what mesh applies.
const FieldManager = "mesh"

// Client bundles the clients mesh needs for one cluster.
type Client struct {
	Config    *rest.Config
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.CachedDiscoveryInterface
	Mapper    *restmapper.DeferredDiscoveryRESTMapper
	// Target names the cluster in messages: the kubeconfig context and server.
	Target string
}

// NewClient builds clients for cfg. It raises client-side rate limits, because
// an install sends a burst of small requests and the defaults (5 QPS) would
// turn a no-op re-install into seconds of waiting on the limiter.
func NewClient(cfg *rest.Config) (*Client, error) {
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS = 200
	}
	if c.Burst == 0 {
		c.Burst = 400
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	kc, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client: %w", err)
	}
	dc, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("build dynamic client: %w", err)
	}
	disc := memory.NewMemCacheClient(kc.Discovery())
	return &Client{
		Config:    c,
		Kube:      kc,
		Dynamic:   dc,
		Discovery: disc,
		Mapper:    restmapper.NewDeferredDiscoveryRESTMapper(disc),
		Target:    "the cluster at " + c.Host,
	}, nil
}

// ServerVersion asks the cluster for its version. It is the first request
// commands send, so its error is turned into a one-line cause.
func (c *Client) ServerVersion(ctx context.Context) (*version.Info, error) {
	var info version.Info
	body, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, c.Explain(err)
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("read the version of %s: %w", c.Target, err)
	}
	return &info, nil
}

// ResetMapping forgets cached discovery, for after new CRDs were created.
func (c *Client) ResetMapping() {
	c.Discovery.Invalidate()
	c.Mapper.Reset()
}

// RESTMapping resolves the resource for a kind, refreshing discovery once
// when the kind is unknown (it may have just been created by a CRD).
func (c *Client) RESTMapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		c.ResetMapping()
		m, err = c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("find the resource for %s: %w", gvk, err)
	}
	return m, nil
}

// MustClient is NewClient for tests and examples, panicking on error.
func MustClient(cfg *rest.Config) *Client {
	c, err := NewClient(cfg)
	if err != nil {
		panic(err)
	}
	return c
}
