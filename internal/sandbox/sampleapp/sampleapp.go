// Package sampleapp is a small HTTP application that plays the four Bookinfo
// services by role (productpage, details, reviews v1/v2/v3, ratings), so the
// sandbox runtime can run a Bookinfo mesh from one local binary, an
// external authorization service for CUSTOM policies (ext-authz), and an
// echo server with a WebSocket endpoint (echo).
package sampleapp

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Roles lists the services the application can play.
var Roles = []string{"productpage", "details", "reviews", "ratings", "ext-authz", "echo"}

// Config says which service to play and where its upstreams are.
type Config struct {
	Role    string
	Version string // v1, v2 or v3; only reviews behaves differently by version
	// DetailsURL, ReviewsURL and RatingsURL are the upstream base URLs.
	DetailsURL, ReviewsURL, RatingsURL string
	// Client calls the upstreams; nil means a client with a 3 s timeout.
	Client *http.Client
	// UnreadyUntil makes /health answer 503 until then: an app (or a
	// stand-in sidecar) that listens at once but is ready only later.
	UnreadyUntil time.Time
}

// propagated are the request headers passed on to upstreams so that routing
// by user and distributed tracing work across the call chain.
var propagated = []string{"end-user", "user-agent", "x-request-id", "traceparent", "tracestate",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "cookie"}

// Handler returns the HTTP handler of the configured role.
func Handler(c Config) (http.Handler, error) {
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 3 * time.Second}
	}
	if c.Version == "" {
		c.Version = "v1"
	}
	if c.Role == "ext-authz" {
		// Every request is a check: not even /health is answered otherwise.
		return extAuthzHTTP(), nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if time.Now().Before(c.UnreadyUntil) {
			http.Error(w, "not ready yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	switch c.Role {
	case "productpage":
		mux.HandleFunc("/", c.productPage)
	case "details":
		mux.HandleFunc("/details/", c.details)
	case "reviews":
		if c.Version != "v1" && c.Version != "v2" && c.Version != "v3" {
			return nil, fmt.Errorf("reviews version %q: want v1, v2 or v3", c.Version)
		}
		mux.HandleFunc("/reviews/", c.reviews)
	case "ratings":
		mux.HandleFunc("/ratings/", c.ratings)
	case "echo":
		echo(mux)
	default:
		return nil, fmt.Errorf("role %q: want one of %s", c.Role, strings.Join(Roles, ", "))
	}
	return mux, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (c Config) details(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{
		"id": strings.TrimPrefix(r.URL.Path, "/details/"), "author": "William Shakespeare", "year": 1595,
		"type": "paperback", "pages": 200, "publisher": "PublisherA", "language": "English",
		"ISBN-10": "1234567890", "ISBN-13": "123-1234567890",
	})
}

func (c Config) ratings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{
		"id": strings.TrimPrefix(r.URL.Path, "/ratings/"), "ratings": map[string]int{"Reviewer1": 5, "Reviewer2": 4},
	})
}

// reviewsBody is what the reviews service answers.
type reviewsBody struct {
	ID      string   `json:"id"`
	Version string   `json:"version"`
	Pod     string   `json:"podname"`
	Reviews []review `json:"reviews"`
}

type review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *rating `json:"rating,omitempty"`
}

type rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

func (c Config) reviews(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/reviews/")
	body := reviewsBody{ID: id, Version: c.Version, Pod: hostname(), Reviews: []review{
		{Reviewer: "Reviewer1", Text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
		{Reviewer: "Reviewer2", Text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
	}}
	if c.Version != "v1" {
		color := "black"
		if c.Version == "v3" {
			color = "red"
		}
		var got struct {
			Ratings map[string]int `json:"ratings"`
		}
		err := c.get(r, c.RatingsURL+"/ratings/"+id, &got)
		for i := range body.Reviews {
			if err != nil {
				body.Reviews[i].Rating = &rating{Error: "Ratings service is currently unavailable"}
				continue
			}
			body.Reviews[i].Rating = &rating{Stars: got.Ratings[body.Reviews[i].Reviewer], Color: color}
		}
	}
	writeJSON(w, body)
}

// get fetches url as JSON into v, passing on the propagated headers of in.
func (c Config) get(in *http.Request, url string, v any) error {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for _, h := range propagated {
		if val := in.Header.Get(h); val != "" {
			req.Header.Set(h, val)
		}
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html>
<head><title>Simple Bookstore App</title></head>
<body>
<h1>The Comedy of Errors</h1>
{{if .DetailsErr}}<p class="error" id="details-error">Error fetching product details: {{.DetailsErr}}</p>{{else}}
<dl id="details">{{range $k, $v := .Details}}<dt>{{$k}}</dt><dd>{{$v}}</dd>{{end}}</dl>{{end}}
{{if .ReviewsErr}}<p class="error" id="reviews-error">Error fetching product reviews: {{.ReviewsErr}}</p>{{else}}
<div id="reviews" data-version="{{.Reviews.Version}}">
<p>Reviews served by: <span id="reviews-version">reviews-{{.Reviews.Version}}</span> ({{.Reviews.Pod}})</p>
{{range .Reviews.Reviews}}<blockquote><p>{{.Text}}</p><small>{{.Reviewer}}</small>
{{with .Rating}}{{if .Error}}<p class="rating-error">{{.Error}}</p>{{else}}<p class="stars" style="color: {{.Color}}">{{.Stars}} stars</p>{{end}}{{end}}
</blockquote>{{end}}
</div>{{end}}
</body>
</html>
`))

func (c Config) productPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "/productpage" {
		http.NotFound(w, r)
		return
	}
	var data struct {
		Details    map[string]any
		DetailsErr string
		Reviews    reviewsBody
		ReviewsErr string
	}
	if err := c.get(r, c.DetailsURL+"/details/0", &data.Details); err != nil {
		data.DetailsErr = err.Error()
	}
	if err := c.get(r, c.ReviewsURL+"/reviews/0", &data.Reviews); err != nil {
		data.ReviewsErr = err.Error()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, data)
}
