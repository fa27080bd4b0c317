package sampleapp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Fetch is the app as a batch job's process (a Job's container, an app
// init container): it GETs url once per attempt, a second apart, writes the
// status line and body to out, and returns nil on the first 2xx. It makes
// no retry beyond attempts, so a test can tell "the network was there when
// the process started" from "it came up later".
func Fetch(ctx context.Context, url string, attempts int, out io.Writer) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	var last error
	for i := 0; i < max(attempts, 1); i++ {
		if i > 0 {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		last = fetchOnce(ctx, client, url, out)
		if last == nil {
			return nil
		}
		fmt.Fprintf(out, "attempt %d: %v\n", i+1, last)
	}
	return last
}

func fetchOnce(ctx context.Context, client *http.Client, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(out, "GET %s: %s\n%s\n", url, resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
