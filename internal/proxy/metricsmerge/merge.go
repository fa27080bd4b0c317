// Package metricsmerge serves a pod's metrics on one endpoint, as Istio's
// agent does on the status port (15020 /stats/prometheus): the proxy's own
// (Envoy stats and Istio's standard metrics), the agent's, and the
// application's, scraped from where the pod's prometheus.io annotations
// pointed before the injector pointed them at the status port.
package metricsmerge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// EnvVar carries the pod's own scrape settings to the proxy (Istio's name;
// the injector writes it when it rewrites the annotations).
const EnvVar = "ISTIO_PROMETHEUS_ANNOTATIONS"

// Scrape is where the application serves its metrics: the values of the
// pod's prometheus.io/scrape, /path and /port annotations.
type Scrape struct {
	Scrape string `json:"scrape,omitempty"`
	Path   string `json:"path,omitempty"`
	Port   string `json:"port,omitempty"`
}

// Empty reports whether the pod said nothing about scraping.
func (s Scrape) Empty() bool { return s.Scrape == "" && s.Path == "" && s.Port == "" }

// Parse reads EnvVar's value; "" means no application metrics.
func Parse(v string) (*Scrape, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var s Scrape
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %v (want a JSON object with scrape, path and port)", EnvVar, err)
	}
	if s.Port != "" {
		if n, err := strconv.Atoi(s.Port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: port %q: want a port number 1-65535 (the pod's prometheus.io/port annotation)", EnvVar, s.Port)
		}
	}
	if s.Path != "" && !strings.HasPrefix(s.Path, "/") {
		return nil, fmt.Errorf("%s: path %q: want an absolute path such as /metrics (the pod's prometheus.io/path annotation)", EnvVar, s.Path)
	}
	return &s, nil
}

// Handler serves the merged metrics.
type Handler struct {
	// Proxy gathers the proxy's metrics (what 15090 serves).
	Proxy prometheus.Gatherer
	// App is where the application serves its metrics; nil or without a
	// port: none are merged.
	App *Scrape
	// Host is where the application is reached (localhost in a pod).
	Host   string
	Client *http.Client
	Log    *slog.Logger

	agent    *prometheus.Registry
	scrapes  prometheus.Counter
	failures *prometheus.CounterVec
}

// New returns a handler with the agent's own counters registered.
func New(proxy prometheus.Gatherer, app *Scrape, host string, log *slog.Logger) *Handler {
	h := &Handler{Proxy: proxy, App: app, Host: host, Log: log, Client: &http.Client{}, agent: prometheus.NewRegistry()}
	h.scrapes = prometheus.NewCounter(prometheus.CounterOpts{Name: "istio_agent_scrapes_total",
		Help: "Scrapes of the merged metrics endpoint."})
	h.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_agent_scrape_failures_total",
		Help: "Parts of a merged scrape that could not be gathered, by part (envoy, application)."}, []string{"type"})
	h.agent.MustRegister(h.scrapes, h.failures)
	if h.Log == nil {
		h.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return h
}

// scrapeApp reports whether application metrics are merged.
func (h *Handler) scrapeApp() bool {
	return h.App != nil && h.App.Port != "" && !strings.EqualFold(h.App.Scrape, "false")
}

// AppURL is the address the application's metrics are read from.
func (h *Handler) AppURL() string {
	if !h.scrapeApp() {
		return ""
	}
	path := h.App.Path
	if path == "" {
		path = "/metrics"
	}
	host := h.Host
	if host == "" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, h.App.Port) + path
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.scrapes.Inc()
	byName := map[string]*dto.MetricFamily{}
	var order []string
	add := func(part string, mfs []*dto.MetricFamily) {
		for _, mf := range mfs {
			if len(mf.GetMetric()) == 0 {
				continue
			}
			cur, ok := byName[mf.GetName()]
			if !ok {
				byName[mf.GetName()] = mf
				order = append(order, mf.GetName())
				continue
			}
			if cur.GetType() != mf.GetType() {
				// Two families of one name and different types would make
				// the whole scrape unreadable; the proxy's is kept.
				h.Log.Warn("metrics merge: family left out, the proxy has one of that name and another type", "part", part, "family", mf.GetName())
				continue
			}
			cur.Metric = append(cur.Metric, mf.Metric...)
		}
	}
	if h.Proxy != nil {
		mfs, err := h.Proxy.Gather()
		if err != nil {
			h.failures.WithLabelValues("envoy").Inc()
			h.Log.Warn("metrics merge: proxy metrics", "error", err)
		}
		add("envoy", mfs)
	}
	if h.scrapeApp() {
		mfs, err := h.fetchApp(r)
		if err != nil {
			h.failures.WithLabelValues("application").Inc()
			h.Log.Warn("metrics merge: application metrics not merged", "url", h.AppURL(), "error", err)
		}
		add("application", mfs)
	}
	// The agent's own counters last, so this scrape's failures are in it.
	if mfs, err := h.agent.Gather(); err == nil {
		add("agent", mfs)
	}
	format := expfmt.Negotiate(r.Header)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, name := range order {
		if err := enc.Encode(byName[name]); err != nil {
			h.Log.Warn("metrics merge: encoding", "family", name, "error", err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		c.Close()
	}
}

// fetchApp scrapes the application in Prometheus' text format, within the
// scraper's own timeout when it says one (Prometheus' header).
func (h *Handler) fetchApp(in *http.Request) ([]*dto.MetricFamily, error) {
	timeout := 10 * time.Second
	if s := in.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			timeout = time.Duration(f * float64(time.Second) * 0.9)
		}
	}
	ctx, cancel := context.WithTimeout(in.Context(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.AppURL(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "openmetrics") {
		// Mostly the text format; its end marker is not.
		body = bytes.TrimSuffix(bytes.TrimRight(body, "\n"), []byte("# EOF"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*dto.MetricFamily, 0, len(names))
	for _, n := range names {
		out = append(out, fams[n])
	}
	return out, nil
}
