package sampleapp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

func serve(t *testing.T, c sampleapp.Config) *httptest.Server {
	t.Helper()
	h, err := sampleapp.Handler(c)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, url string, hdr map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func TestProductPageCallsTheChain(t *testing.T) {
	var sawUser string
	ratings := serve(t, sampleapp.Config{Role: "ratings"})
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawUser = r.Header.Get("end-user")
		resp, err := http.Get(ratings.URL + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(spy.Close)
	reviews := serve(t, sampleapp.Config{Role: "reviews", Version: "v3", RatingsURL: spy.URL})
	details := serve(t, sampleapp.Config{Role: "details"})
	page := serve(t, sampleapp.Config{Role: "productpage", DetailsURL: details.URL, ReviewsURL: reviews.URL})

	html := get(t, page.URL+"/productpage", map[string]string{"end-user": "jason"})
	for _, want := range []string{"<title>Simple Bookstore App</title>", "reviews-v3", `color: red`, "William Shakespeare"} {
		if !strings.Contains(html, want) {
			t.Errorf("product page lacks %q:\n%s", want, html)
		}
	}
	if sawUser != "jason" {
		t.Errorf("end-user header reaching ratings = %q, want it passed along the chain", sawUser)
	}
}

func TestReviewsWithoutRatings(t *testing.T) {
	v1 := serve(t, sampleapp.Config{Role: "reviews", Version: "v1", RatingsURL: "http://127.0.0.1:1"})
	var body struct {
		Reviews []struct {
			Rating *struct{} `json:"rating"`
		} `json:"reviews"`
	}
	if err := json.Unmarshal([]byte(get(t, v1.URL+"/reviews/0", nil)), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Reviews) == 0 || body.Reviews[0].Rating != nil {
		t.Errorf("reviews v1 must not call ratings: %+v", body)
	}
	v2 := serve(t, sampleapp.Config{Role: "reviews", Version: "v2", RatingsURL: "http://127.0.0.1:1"})
	if out := get(t, v2.URL+"/reviews/0", nil); !strings.Contains(out, "Ratings service is currently unavailable") {
		t.Errorf("reviews v2 with ratings down = %s", out)
	}
}

func TestBadRole(t *testing.T) {
	if _, err := sampleapp.Handler(sampleapp.Config{Role: "cart"}); err == nil || !strings.Contains(err.Error(), "productpage") {
		t.Errorf("unknown role: err = %v, want one naming the roles", err)
	}
	if _, err := sampleapp.Handler(sampleapp.Config{Role: "reviews", Version: "v9"}); err == nil {
		t.Error("reviews v9 accepted")
	}
}
