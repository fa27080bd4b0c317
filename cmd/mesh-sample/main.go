// Command mesh-sample is the sandbox's stand-in for the Bookinfo services: one
// binary that serves productpage, details, reviews (v1/v2/v3) or ratings on
// port 9080, chosen by --role and --version, and grpc.health.v1 for gRPC
// probes when --grpc-health-listen is given; with --fetch it is a process
// that makes one request and exits, as a Job's container does; with
// --on-sigterm-fetch it is an app that calls out while it shuts down. As
// --role=ext-authz it is an external authorization service speaking Envoy's
// HTTP ext_authz protocol on --listen and, with --ext-authz-grpc-listen, its
// gRPC one.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

func main() {
	fs := flag.NewFlagSet("mesh-sample", flag.ContinueOnError)
	c := sampleapp.Config{}
	fs.StringVar(&c.Role, "role", os.Getenv("SERVICE_ROLE"), "service to play: productpage, details, reviews, ratings, ext-authz or echo (default $SERVICE_ROLE)")
	fs.StringVar(&c.Version, "version", envOr("SERVICE_VERSION", "v1"), "service version, v1, v2 or v3 (default $SERVICE_VERSION)")
	addr := fs.String("listen", ":9080", "address to serve on")
	grpcAddr := fs.String("grpc-health-listen", "", "address to serve grpc.health.v1 on, for gRPC probes (empty: none)")
	fs.StringVar(&c.DetailsURL, "details-url", "http://details:9080", "details service base URL")
	fs.StringVar(&c.ReviewsURL, "reviews-url", "http://reviews:9080", "reviews service base URL")
	fs.StringVar(&c.RatingsURL, "ratings-url", "http://ratings:9080", "ratings service base URL")
	authzGRPC := fs.String("ext-authz-grpc-listen", "", "with --role=ext-authz: address to serve envoy.service.auth.v3 Check on (empty: none)")
	unready := fs.Duration("unready-for", 0, "answer /health with 503 for this long after start")
	fetch := fs.String("fetch", "", "instead of serving: GET this URL, print the answer and exit 0 on a 2xx, 1 otherwise (a Job's process)")
	attempts := fs.Int("fetch-attempts", 1, "with --fetch and --resolve: how many times to try, a second apart")
	onTerm := fs.String("on-sigterm-fetch", "", "while serving: on SIGTERM, wait --on-sigterm-delay, GET this URL once, print the answer and exit 0 on a 2xx, 1 otherwise (an app that calls out during its own shutdown)")
	termDelay := fs.Duration("on-sigterm-delay", 0, "with --on-sigterm-fetch: how long the app's shutdown works before it calls out")
	resolve := fs.String("resolve", "", "before --fetch (or instead of serving): ask the pod's DNS (/etc/resolv.conf, search path; not the hosts file) for these names' IPv4 addresses (a comma list), print them, exit 1 when there are none")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(64)
	}
	if *resolve != "" {
		for _, name := range strings.Split(*resolve, ",") {
			if err := sampleapp.Resolve(context.Background(), strings.TrimSpace(name), "/etc/resolv.conf", *attempts, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "mesh-sample: --resolve:", err)
				os.Exit(1)
			}
		}
		if *fetch == "" {
			os.Exit(0)
		}
	}
	if *fetch != "" {
		if err := sampleapp.Fetch(context.Background(), *fetch, *attempts, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "mesh-sample: --fetch:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	c.UnreadyUntil = time.Now().Add(*unready)
	h, err := sampleapp.Handler(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mesh-sample:", err)
		os.Exit(64)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	log.Info("serving", "role", c.Role, "version", c.Version, "address", *addr)
	if *grpcAddr != "" {
		l, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mesh-sample: --grpc-health-listen:", err)
			os.Exit(1)
		}
		go func() {
			err := sampleapp.ServeGRPCHealth(l)
			fmt.Fprintln(os.Stderr, "mesh-sample: gRPC health:", err)
			os.Exit(1)
		}()
	}
	if *authzGRPC != "" {
		if c.Role != "ext-authz" {
			fmt.Fprintln(os.Stderr, "mesh-sample: --ext-authz-grpc-listen needs --role=ext-authz")
			os.Exit(64)
		}
		l, err := net.Listen("tcp", *authzGRPC)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mesh-sample: --ext-authz-grpc-listen:", err)
			os.Exit(1)
		}
		go func() {
			err := sampleapp.ServeExtAuthzGRPC(l)
			fmt.Fprintln(os.Stderr, "mesh-sample: ext-authz gRPC:", err)
			os.Exit(1)
		}()
	}
	if *onTerm != "" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			log.Info("SIGTERM: calling out before exiting", "url", *onTerm, "after", *termDelay)
			time.Sleep(*termDelay)
			if err := sampleapp.Fetch(context.Background(), *onTerm, 1, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "mesh-sample: --on-sigterm-fetch:", err)
				os.Exit(1)
			}
			os.Exit(0)
		}()
	}
	if err := http.ListenAndServe(*addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "mesh-sample:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
