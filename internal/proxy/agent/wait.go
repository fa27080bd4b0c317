package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// waitMain is `mesh-proxy wait`, Istio's `pilot-agent wait`: it polls the
// proxy's readiness until it answers 200, for the classic layout's
// postStart hook (holdApplicationUntilProxyStarts), which the kubelet runs
// to completion before it starts the next container, the app. It exits 0
// once ready, 1 when the timeout passes first, 64 on bad flags.
func waitMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mesh-proxy wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://localhost:15021/healthz/ready", "readiness URL to poll")
	timeout := fs.Int("timeoutSeconds", 60, "seconds to wait for readiness before failing")
	period := fs.Int("periodMillis", 500, "milliseconds between two attempts")
	reqTimeout := fs.Int("requestTimeoutMillis", 500, "milliseconds one attempt may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mesh-proxy wait: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *timeout < 0 || *period <= 0 || *reqTimeout <= 0 {
		fmt.Fprintf(stderr, "mesh-proxy wait: --timeoutSeconds must be 0 or more, --periodMillis and --requestTimeoutMillis more than 0\n")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeout)*time.Second)
	defer cancel()
	if err := waitReady(ctx, *url, time.Duration(*period)*time.Millisecond, time.Duration(*reqTimeout)*time.Millisecond); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy wait: %s not ready after %ds: %v\n", *url, *timeout, err)
		return exitError
	}
	fmt.Fprintf(stdout, "mesh-proxy wait: %s is ready\n", *url)
	return exitOK
}

// waitReady polls url every period until it answers 200 or ctx ends,
// returning the last failure then.
func waitReady(ctx context.Context, url string, period, reqTimeout time.Duration) error {
	client := &http.Client{Timeout: reqTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	var last error = errors.New("no attempt made")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(period):
		}
	}
}
