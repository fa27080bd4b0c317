// Package pilot assembles the control plane: the model watcher, the xDS
// server (plaintext 15010, mTLS 15012), the certificate authority, the debug
// endpoints (15014) and the admission webhooks (15017).
package pilot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	meshconfig "istio.io/api/mesh/v1alpha1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/enforced"
	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/debug"
	"mesh.dev/mesh/internal/pilot/gatewaydeploy"
	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/pilot/meshwatch"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
	"mesh.dev/mesh/internal/pilot/secretaccess"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/pilot/telemetry"
	"mesh.dev/mesh/internal/pilot/webhook"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/version"
)

// DefaultMemoryLimitMiB is mesh-pilot's default soft memory limit: near it
// the garbage collector runs more often instead of letting the heap double
// after a burst (2,000 proxies connecting at once). It is not a cap; pilot
// is not killed at it.
const DefaultMemoryLimitMiB = 896

// Options configure a pilot. Zero values take the defaults noted.
type Options struct {
	Kubeconfig     string // empty: in-cluster config
	Namespace      string // default $POD_NAMESPACE or mesh-system
	Revision       string // default $REVISION or "default"
	ServiceName    string // default mesh-pilot
	XDSAddr        string // default :15010
	SecureXDSAddr  string // default :15012
	DebugAddr      string // default :15014
	WebhookAddr    string // default :15017
	MeshConfigFile string // mesh config YAML at start (the `mesh` ConfigMap's key, mounted); empty: read MeshConfigMap
	// MeshConfigMap is the ConfigMap in Namespace whose `mesh` key is the
	// mesh config, watched for changes (default mesh, or mesh-REVISION);
	// while there is none pilot serves the defaults.
	MeshConfigMap      string
	InjectorValuesFile string // injector values; empty: read the mesh-sidecar-injector ConfigMap
	WorkloadCertTTL    time.Duration
	ExtraHosts         []string // more names/IPs for the serving certificate (e.g. 127.0.0.1)
	// SecretNamespaces are where gateway credentials (credentialName,
	// certificateRefs) are read from besides Namespace, where the
	// gateways run and which is always read; "*" for every namespace.
	SecretNamespaces []string
	// StaticSecretNamespaces: read Secrets in SecretNamespaces only, not
	// also in each namespace gateways need them from (which pilot
	// otherwise follows, binding the base chart's ClusterRole
	// mesh-pilot-gateway-secrets there).
	StaticSecretNamespaces bool
	// GatewayServiceType is the type of the Services of Gateway API
	// Gateways pilot deploys (default LoadBalancer, as Istio's; a Gateway's
	// networking.istio.io/service-type annotation wins). Default
	// $PILOT_GATEWAY_SERVICE_TYPE.
	GatewayServiceType string
	// Identity names this replica in the leader elections (the status
	// writer's lease, which also steps the rollouts); default the
	// hostname and process id.
	Identity string
	// RolloutDefault is the mesh-wide default of the rollout annotations
	// (docs/rollout.md): the zero value stages nothing.
	RolloutDefault annotation.Default
	// JWKSFetchMode is who fetches a RequestAuthentication's jwksUri, as
	// Istio's PILOT_JWT_ENABLE_REMOTE_JWKS: istiod (or false: pilot fetches
	// and inlines the keys), hybrid (or true: the proxy fetches from mesh
	// hosts, pilot the rest) or envoy (the proxy fetches). Default
	// $PILOT_JWT_ENABLE_REMOTE_JWKS, else istiod (docs/security.md).
	JWKSFetchMode string
	Log           *slog.Logger

	// Filled by Run for callers (tests) that need them.
	Server   *xds.Server
	CA       *ca.Authority
	listened chan struct{}
	addrs    map[string]net.Addr
	mu       sync.Mutex
	initOnce sync.Once
}

func (o *Options) initState() {
	o.initOnce.Do(func() {
		o.listened = make(chan struct{})
		o.addrs = map[string]net.Addr{}
	})
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if o.Namespace == "" {
		o.Namespace = "mesh-system"
	}
	if o.Revision == "" {
		o.Revision = os.Getenv("REVISION")
	}
	if o.Revision == "" {
		o.Revision = "default"
	}
	if o.ServiceName == "" {
		o.ServiceName = "mesh-pilot"
		if o.Revision != "default" {
			o.ServiceName += "-" + o.Revision
		}
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.XDSAddr, ":15010")
	def(&o.SecureXDSAddr, ":15012")
	def(&o.DebugAddr, ":15014")
	def(&o.WebhookAddr, ":15017")
	def(&o.MeshConfigMap, "mesh"+o.revSuffix())
	if !slices.Contains(o.SecretNamespaces, o.Namespace) {
		o.SecretNamespaces = append([]string{o.Namespace}, o.SecretNamespaces...)
	}
	def(&o.GatewayServiceType, os.Getenv("PILOT_GATEWAY_SERVICE_TYPE"))
	def(&o.JWKSFetchMode, os.Getenv("PILOT_JWT_ENABLE_REMOTE_JWKS"))
	if o.WorkloadCertTTL == 0 {
		o.WorkloadCertTTL = 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.initState()
}

// revSuffix is how the install charts suffix per-revision object names.
func (o *Options) revSuffix() string {
	if o.Revision == "default" {
		return ""
	}
	return "-" + o.Revision
}

// Addr returns the bound address of a listener ("xds", "secure-xds",
// "debug", "webhook") once Run has bound it.
func (o *Options) Addr(ctx context.Context, name string) (net.Addr, error) {
	o.initState()
	select {
	case <-o.listened:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.addrs[name], nil
}

// RESTConfig loads the kubeconfig, or the in-cluster config without one.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("not running in a cluster (%v); pass --kubeconfig", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// Run serves until ctx ends or a server fails.
func (o *Options) Run(ctx context.Context) error {
	o.defaults()
	log := o.Log
	if err := o.RolloutDefault.Check(nil); err != nil {
		return fmt.Errorf("rollout default: %w", err)
	}
	jwksFetch, err := model.ParseJWKSFetchMode(o.JWKSFetchMode)
	if err != nil {
		return fmt.Errorf("--jwks-fetch-mode (or PILOT_JWT_ENABLE_REMOTE_JWKS) %w", err)
	}
	// The mesh config at start: the file (the ConfigMap as mounted), or
	// else the ConfigMap read from the API server. Pilot does not start on
	// one it would misread; later changes of the ConfigMap are watched
	// (meshwatch), and a bad one is refused while pilot keeps serving.
	var mc *meshconfig.MeshConfig
	var meshData []byte
	if o.MeshConfigFile != "" {
		if meshData, err = os.ReadFile(o.MeshConfigFile); err != nil {
			return fmt.Errorf("mesh config: %w", err)
		}
		if mc, err = meshwatch.Parse(meshData, o.MeshConfigFile, o.Namespace); err != nil {
			return err
		}
	}
	rc, err := RESTConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	istio, err := istioclient.NewForConfig(rc)
	if err != nil {
		return err
	}
	gwapi, err := gwclient.NewForConfig(rc)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}

	if mc == nil {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		mc, meshData, _, err = meshwatch.Read(rctx, kube, o.Namespace, o.MeshConfigMap, o.Namespace)
		cancel()
		if err != nil {
			return err
		}
	}

	authority, err := ca.LoadOrCreate(ctx, kube, o.Namespace, log)
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	o.CA = authority
	hosts := append([]string{
		o.ServiceName + "." + o.Namespace + ".svc",
		o.ServiceName + "." + o.Namespace + ".svc." + model.DomainSuffix,
		o.ServiceName + "." + o.Namespace, o.ServiceName,
	}, o.ExtraHosts...)
	serving := &rotatingCert{ca: authority, hosts: hosts, ttl: 24 * time.Hour}
	if _, err := serving.get(); err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg, time.Now())
	secrets := &ca.SecretCache{CA: authority, TTL: o.WorkloadCertTTL}
	srv := xds.NewServer(ctx, secrets, xds.NewMetrics(reg), log)
	o.Server = srv
	// A valid change of the mesh ConfigMap becomes the model's mesh
	// config and a full push; the injector reads the current one too.
	watcher := &model.Watcher{Kube: kube, Istio: istio, GatewayAPI: gwapi, Dynamic: dyn, RootNamespace: mc.RootNamespace, SecretNamespaces: o.SecretNamespaces,
		FollowGatewaySecrets: !o.StaticSecretNamespaces, Mesh: mc, JWKSFetch: jwksFetch}
	mesh := meshwatch.New(meshwatch.Config{Kube: kube, Namespace: o.Namespace, Name: o.MeshConfigMap, DefaultRoot: o.Namespace,
		OnChange: watcher.SetMesh, Log: log}, mc, meshData, reg)

	listen := func(name, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s on %s: %w", name, addr, err)
		}
		o.mu.Lock()
		o.addrs[name] = l.Addr()
		o.mu.Unlock()
		return l, nil
	}
	xdsL, err := listen("xds", o.XDSAddr)
	if err != nil {
		return err
	}
	secL, err := listen("secure-xds", o.SecureXDSAddr)
	if err != nil {
		return err
	}
	dbgL, err := listen("debug", o.DebugAddr)
	if err != nil {
		return err
	}
	whL, err := listen("webhook", o.WebhookAddr)
	if err != nil {
		return err
	}
	close(o.listened)

	plain := grpc.NewServer(grpc.MaxConcurrentStreams(100000))
	srv.Register(plain)
	secure := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serving.get() },
			ClientAuth:     tls.VerifyClientCertIfGiven,
			ClientCAs:      authority.RootPool(),
		})),
		grpc.StreamInterceptor(requireClientCertForXDS),
		grpc.MaxConcurrentStreams(100000),
	)
	srv.Register(secure)
	(&ca.Service{CA: authority, Kube: kube, MaxTTL: o.WorkloadCertTTL, Log: log, Audiences: []string{inject.TokenAudience}}).Register(secure)

	ready := func() error {
		select {
		case <-srv.Ready():
			return nil
		default:
			return errors.New("waiting for the informers to sync")
		}
	}
	// Staged release: the manager stands between the watcher and the xDS
	// server, serving released versions and staging candidates
	// (docs/rollout.md); with no annotated resource it passes snapshots on.
	// The health gates read the affected proxies' own metrics on their
	// pods' stats port (15020), no Prometheus server involved.
	staged := &rollout.Manager{Log: log, Push: srv.UpdateStaged, Health: (&rollout.ScrapeProxies{}).Sample, Default: o.RolloutDefault}
	srv.OnReject = staged.Reject
	dbgMux := http.NewServeMux()
	dbgMux.Handle("/debug/rolloutz", debug.Rollouts(staged))
	dbgMux.Handle("/debug/rolloutz/", debug.Rollouts(staged))
	dbgMux.Handle("/debug/mesh", debug.Mesh(mesh.Current))
	dbgMux.Handle("/", debug.Handler(srv, reg, ready))
	dbg := &http.Server{Handler: dbgMux, ReadHeaderTimeout: 10 * time.Second}
	native, err := nativeSidecarsEnv()
	if err != nil {
		return err
	}
	values := o.injectorValues(kube, native, mesh.Current, kubeVersion(kube, log))
	// Every mesh config field is classified (internal/enforced); what is
	// set and not carried out is said once, at start, field by field.
	for _, f := range enforced.MeshConfig(mc) {
		log.Warn("mesh config field not carried out", "field", f.Path, "why", f.Note)
	}
	wh := &http.Server{
		Handler: webhook.Handler(values, func(ctx context.Context, name string) (map[string]string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			ns, err := kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return ns.Labels, nil
		}, o.RolloutDefault, log),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serving.get() },
		},
	}

	// The Gateway API automated deployment: one replica applies it, the
	// status writer's leader.
	deployer := &gatewaydeploy.Deployer{Kube: kube, Values: values, ServiceType: corev1.ServiceType(o.GatewayServiceType)}
	also := []status.Task{deployer}
	if !o.StaticSecretNamespaces {
		// Pilot may read the Secrets of each namespace its gateways need
		// them from: the leader binds the base chart's ClusterRole there
		// (docs/gateways.md, "Which Secrets pilot reads").
		also = append(also, &secretaccess.Binder{Kube: kube, Name: "mesh-pilot" + o.revSuffix() + "-gateway-secrets-auto",
			ClusterRole: "mesh-pilot" + o.revSuffix() + "-gateway-secrets", ServiceAccount: "mesh-pilot" + o.revSuffix(), Namespace: o.Namespace,
			Granted: o.SecretNamespaces})
	}
	statusWriter := &status.Writer{Istio: istio, GatewayAPI: gwapi, Dynamic: dyn, Kube: kube, Namespace: o.Namespace, LeaseName: "mesh-pilot-status" + o.revSuffix(), Log: log,
		Identity: o.Identity, Also: also}
	// Each rollout step is a Kubernetes Event on its resource, recorded
	// by the status writer's leader alone.
	rolloutEvents := &rollout.Events{Kube: kube, Record: statusWriter.Leading, Log: log}
	// and the resource's status carries its rollout (mesh.io/RolloutReleased).
	statusWriter.Rollouts = staged.Statuses
	// One replica steps the rollouts, the status writer's leader; it
	// keeps them in the cluster, so a restarted pilot resumes them and
	// the other replicas serve the stages it steps, handing it their
	// proxies' rejections (docs/rollout.md, "Several replicas").
	rolloutState := &rollout.ConfigMapStore{Kube: kube, Namespace: o.Namespace, Name: "mesh-pilot-rollouts" + o.revSuffix(), Write: statusWriter.Leading, Log: log,
		Follow: staged.Follow, Rejected: staged.Forwarded}
	staged.Store = rolloutState
	staged.Leads = statusWriter.Leading
	staged.Forward = rolloutState.Forward
	statusWriter.OnLead = func(ctx context.Context) {
		rolloutEvents.Led() // the steps taken while no replica recorded them
		staged.Lead(ctx)
	}
	staged.OnEvent = func(e rollout.Event) {
		rolloutEvents.Offer(e)
		statusWriter.Poke()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		reported := map[string]bool{}
		watcher.OnSnapshot = func(s *model.Snapshot, ch model.Change) {
			staged.Offer(s, ch)
			statusWriter.Offer(s)
			reportTelemetry(log, s, reported)
		}
		return watcher.Run(gctx)
	})
	g.Go(func() error { return mesh.Run(gctx) })
	// Istio's status (what is not enforced) on the resources read, written
	// by one replica at a time.
	g.Go(func() error { return statusWriter.Run(gctx) })
	g.Go(func() error { return rolloutEvents.Run(gctx) })
	g.Go(func() error { return rolloutState.Run(gctx) })
	g.Go(func() error { return (&ca.Publisher{Kube: kube, RootPEM: authority.RootPEM(), Log: log}).Run(gctx) })
	g.Go(func() error { return serveUntil(gctx, func() error { return plain.Serve(xdsL) }, plain.Stop) })
	g.Go(func() error { return serveUntil(gctx, func() error { return secure.Serve(secL) }, secure.Stop) })
	g.Go(func() error {
		return serveHTTP(gctx, dbg, func() error { return dbg.Serve(dbgL) })
	})
	g.Go(func() error {
		return serveHTTP(gctx, wh, func() error { return wh.ServeTLS(whL, "", "") })
	})
	g.Go(func() error {
		mutating := []string{"mesh-sidecar-injector" + o.revSuffix()}
		validating := []string{"mesh-validator" + o.revSuffix() + "-" + o.Namespace}
		go webhook.KeepCABundles(gctx, kube, mutating, validating, authority.RootPEM, 10*time.Second, log)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			if secrets.DueForRotation() {
				log.Info("rotating workload certificates")
				srv.Refresh()
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	log.Info("pilot serving", "namespace", o.Namespace, "revision", o.Revision,
		"xds", xdsL.Addr().String(), "secureXDS", secL.Addr().String(), "debug", dbgL.Addr().String(), "webhook", whL.Addr().String())
	return g.Wait()
}

// reportTelemetry logs, once each, what the mesh config and Telemetry
// resources ask for that pilot cannot carry out (unknown or unsupported
// providers, unparsable filters, targetRefs).
func reportTelemetry(log *slog.Logger, s *model.Snapshot, reported map[string]bool) {
	for _, p := range telemetry.New(s.Mesh, s.RootNamespace, s.Telemetries).Problems() {
		if msg := p.String(); !reported[msg] {
			reported[msg] = true
			log.Warn("telemetry config not carried out", "resource", p.Resource, "field", p.Field, "reason", p.Message)
		}
	}
}

func serveUntil(ctx context.Context, serve func() error, stop func()) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case <-ctx.Done():
		stop()
		return nil
	case err := <-errc:
		return err
	}
}

func serveHTTP(ctx context.Context, s *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// nativeSidecarsEnv reads Istio's ENABLE_NATIVE_SIDECARS (values.pilot.env):
// "true" or "false" decides for every pod the values do not decide for;
// unset (or "auto") leaves it to the cluster's version.
func nativeSidecarsEnv() (*bool, error) {
	v := os.Getenv("ENABLE_NATIVE_SIDECARS")
	if v == "" || v == "auto" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, fmt.Errorf("environment ENABLE_NATIVE_SIDECARS=%q: want true, false or auto (values.pilot.env.ENABLE_NATIVE_SIDECARS)", v)
	}
	return &b, nil
}

// kubeVersion is the API server's version, which decides whether injected
// pods get native sidecars; "" (the classic layout, which every cluster
// runs) when it cannot be read.
func kubeVersion(kube kubernetes.Interface, log *slog.Logger) string {
	info, err := kube.Discovery().ServerVersion()
	if err != nil {
		log.Warn("API server version unknown: injecting the classic sidecar layout, not native sidecars", "err", err)
		return ""
	}
	log.Info("API server version", "version", info.GitVersion)
	return info.GitVersion
}

// injectorValues reads the values from the file, or else from the
// mesh-sidecar-injector ConfigMap, caching a ConfigMap read for a few
// seconds, and adds the cluster's version, ENABLE_NATIVE_SIDECARS and the
// mesh config's enablePrometheusMerge where the values do not say, and the
// mesh config's defaultConfig.
func (o *Options) injectorValues(kube kubernetes.Interface, native *bool, mesh func() *meshconfig.MeshConfig, kubeVersion string) func() (inject.Values, error) {
	read := o.readInjectorValues(kube)
	return func() (inject.Values, error) {
		v, err := read()
		if err != nil {
			return v, err
		}
		// The mesh config pilot serves now: a pod injected after a change
		// of defaultConfig gets the new defaults, as in Istio, where
		// defaultConfig is read at injection and fixed for the pod's life.
		mc := mesh()
		promMerge := mc.GetEnablePrometheusMerge()
		v.KubeVersion = kubeVersion
		v.MeshDefaults = mc.GetDefaultConfig()
		if v.NativeSidecars == nil {
			v.NativeSidecars = native
		}
		if v.EnablePrometheusMerge == nil && promMerge != nil {
			b := promMerge.GetValue()
			v.EnablePrometheusMerge = &b
		}
		return v, nil
	}
}

func (o *Options) readInjectorValues(kube kubernetes.Interface) func() (inject.Values, error) {
	var mu sync.Mutex
	var cached inject.Values
	var at time.Time
	return func() (inject.Values, error) {
		if o.InjectorValuesFile != "" {
			data, err := os.ReadFile(o.InjectorValuesFile)
			if err != nil {
				return inject.Values{}, err
			}
			return inject.ParseValues(data)
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) < 5*time.Second {
			return cached, nil
		}
		name := "mesh-sidecar-injector" + o.revSuffix()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cm, err := kube.CoreV1().ConfigMaps(o.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return inject.Values{}, fmt.Errorf("configmap %s/%s: %w", o.Namespace, name, err)
		}
		v, err := inject.ParseValues([]byte(cm.Data["values"]))
		if err != nil {
			return inject.Values{}, fmt.Errorf("configmap %s/%s key values: %w", o.Namespace, name, err)
		}
		cached, at = v, time.Now()
		return v, nil
	}
}

// registerBuildInfo adds Istio's istio_build{component="pilot",tag} (1)
// and istiod_uptime_seconds, which its control plane dashboard shows.
func registerBuildInfo(reg prometheus.Registerer, start time.Time) {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "istio_build", Help: "The component's build: its version in tag."}, []string{"component", "tag"})
	build.WithLabelValues("pilot", version.Version).Set(1)
	reg.MustRegister(build, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "istiod_uptime_seconds", Help: "Seconds since pilot started."},
		func() float64 { return time.Since(start).Seconds() }))
}

// rotatingCert reissues pilot's serving certificate before it expires.
type rotatingCert struct {
	ca    *ca.Authority
	hosts []string
	ttl   time.Duration

	mu   sync.Mutex
	cert *tls.Certificate
	due  time.Time
}

func (r *rotatingCert) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && time.Now().Before(r.due) {
		return r.cert, nil
	}
	c, err := r.ca.ServingCertificate(r.hosts, r.ttl)
	if err != nil {
		return nil, err
	}
	r.cert, r.due = &c, time.Now().Add(r.ttl/2)
	return r.cert, nil
}
