package runtime

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// kubernetesService is the "kubernetes" Service's ClusterIP; pods reach the
// API server there, as in a real cluster, through the gateway forwarder.
const kubernetesService = "198.19.0.1"

// serviceChain is the nat chain, in every pod's namespace, that plays
// kube-proxy: ClusterIP:port to a ready endpoint, picked at random. It is
// jumped to from OUTPUT after the pod's init containers ran, so a sidecar's
// capture rules see application traffic first.
const serviceChain = "MSB_SERVICES"

// services follows Services and EndpointSlices and keeps each running pod's
// nat rules and hosts file in step with them.
type services struct {
	rt      *Runtime
	svcs    cache.Store
	slices  cache.Store
	kick    chan struct{}
	mu      sync.Mutex
	rules   string
	hosts   string
	applied map[string]string // namespace → rules last loaded there
}

func (r *Runtime) startServices(ctx context.Context) {
	s := &services{rt: r, kick: make(chan struct{}, 1), applied: map[string]string{}}
	f := informers.NewSharedInformerFactory(r.cs, 0)
	si, ei := f.Core().V1().Services().Informer(), f.Discovery().V1().EndpointSlices().Informer()
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { s.poke() }, UpdateFunc: func(any, any) { s.poke() }, DeleteFunc: func(any) { s.poke() }}
	si.AddEventHandler(h)
	ei.AddEventHandler(h)
	s.svcs, s.slices = si.GetStore(), ei.GetStore()
	r.svc = s
	f.Start(ctx.Done())
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for {
			select {
			case <-ctx.Done():
				f.Shutdown()
				return
			case <-s.kick:
			}
			// Changes come in bursts (a Deployment's pods, a manifest's Services).
			time.Sleep(100 * time.Millisecond)
			s.refresh(ctx)
		}
	}()
	s.poke()
}

func (s *services) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// render computes the nat rules and the hosts entries of every Service.
func (s *services) render() (rules, hosts string) {
	var r, h strings.Builder
	fmt.Fprintf(&r, "*nat\n:%s - [0:0]\n", serviceChain)
	fmt.Fprintf(&r, "-A %s -d %s/32 -p tcp --dport 443 -j DNAT --to-destination %s:443\n", serviceChain, kubernetesService, s.rt.net.gateway)
	byService := map[string][]*discoveryv1.EndpointSlice{}
	for _, o := range s.slices.List() {
		es := o.(*discoveryv1.EndpointSlice)
		key := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
		byService[key] = append(byService[key], es)
	}
	svcs := s.svcs.List()
	sort.Slice(svcs, func(i, j int) bool {
		a, b := svcs[i].(*corev1.Service), svcs[j].(*corev1.Service)
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	for _, o := range svcs {
		svc := o.(*corev1.Service)
		ip := svc.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone {
			continue
		}
		fmt.Fprintf(&h, "%s %s.%s.svc.cluster.local %s.%s.svc %s.%s\n", ip, svc.Name, svc.Namespace, svc.Name, svc.Namespace, svc.Name, svc.Namespace)
		for _, p := range svc.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			var targets []string
			for _, es := range byService[svc.Namespace+"/"+svc.Name] {
				port := int32(-1)
				for _, ep := range es.Ports {
					if ep.Port != nil && ptrString(ep.Name) == p.Name {
						port = *ep.Port
					}
				}
				if port < 0 {
					continue
				}
				for _, e := range es.Endpoints {
					if e.Conditions.Ready != nil && !*e.Conditions.Ready {
						continue
					}
					for _, a := range e.Addresses {
						targets = append(targets, net.JoinHostPort(a, fmt.Sprint(port)))
					}
				}
			}
			sort.Strings(targets)
			for i, t := range targets {
				rule := fmt.Sprintf("-A %s -d %s/32 -p tcp --dport %d", serviceChain, ip, p.Port)
				if left := len(targets) - i; left > 1 {
					rule += fmt.Sprintf(" -m statistic --mode random --probability %.6f", 1/float64(left))
				}
				fmt.Fprintf(&r, "%s -j DNAT --to-destination %s\n", rule, t)
			}
		}
	}
	r.WriteString("COMMIT\n")
	return r.String(), h.String()
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *services) refresh(ctx context.Context) {
	rules, hosts := s.render()
	s.mu.Lock()
	s.rules, s.hosts = rules, hosts
	s.mu.Unlock()
	s.rt.mu.Lock()
	var ws []*podWorker
	for _, w := range s.rt.workers {
		ws = append(ws, w)
	}
	s.rt.mu.Unlock()
	for _, w := range ws {
		s.sync(ctx, w)
	}
}

// sync brings one pod's hosts file and (once its init containers ran) its
// service rules up to date.
func (s *services) sync(ctx context.Context, w *podWorker) {
	// The worker and a refresh both sync a pod: one iptables-restore at a
	// time in its namespace, or the jump into the chain can go in twice.
	w.svcMu.Lock()
	defer w.svcMu.Unlock()
	s.mu.Lock()
	rules, hosts := s.rules, s.hosts
	s.mu.Unlock()
	w.mu.Lock()
	pn, inited, hostsFile, ip := w.net, w.svcReady, w.hostsFile, w.ip
	w.mu.Unlock()
	if hostsFile != "" {
		// Written in place: containers see the file through a bind mount of this inode.
		content := fmt.Sprintf("127.0.0.1 localhost\n%s %s\n%s%s", ip, w.pod.Name, shortNames(hosts, w.pod.Namespace), hosts)
		_ = os.WriteFile(hostsFile, []byte(content), 0o644)
	}
	if pn == nil || !inited {
		return
	}
	s.mu.Lock()
	same := s.applied[pn.ns] == rules
	s.mu.Unlock()
	if same {
		return
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", pn.ns, "iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() == nil {
			s.rt.log.Warn("service rules not loaded; trying again", "pod", w.key(), "err", err, "out", strings.TrimSpace(string(out)))
			s.retry()
		}
		return
	}
	if exec.CommandContext(ctx, "ip", "netns", "exec", pn.ns, "iptables", "-t", "nat", "-C", "OUTPUT", "-j", serviceChain).Run() != nil {
		if err := run(ctx, "ip", "netns", "exec", pn.ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-j", serviceChain); err != nil {
			s.rt.log.Warn("service rules not hooked; trying again", "pod", w.key(), "err", err)
			s.retry()
			return
		}
	}
	s.mu.Lock()
	s.applied[pn.ns] = rules
	s.mu.Unlock()
}

// retry refreshes again a second from now: a pod whose rules did not load
// must not wait for the next change to a Service or EndpointSlice, which may
// never come, with every ClusterIP unreachable from it meanwhile.
func (s *services) retry() { time.AfterFunc(time.Second, s.poke) }

func (s *services) forget(ns string) {
	s.mu.Lock()
	delete(s.applied, ns)
	s.mu.Unlock()
}

// shortNames adds the bare Service names of the pod's own namespace, which a
// resolver's search list would give in a real cluster.
func shortNames(hosts, ns string) string {
	var b strings.Builder
	for _, line := range strings.Split(hosts, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, svcNS, _ := strings.Cut(strings.TrimSuffix(f[1], ".svc.cluster.local"), ".")
		if svcNS == ns {
			fmt.Fprintf(&b, "%s %s\n", f[0], name)
		}
	}
	return b.String()
}

// forwardAPIServer lets pods reach the API server, which listens on host
// loopback only: it listens on the gateway's port 443 and copies bytes to the
// API server. TLS is end to end, and the API server's certificate names
// 198.19.0.1, the address pods dial.
func (r *Runtime) forwardAPIServer(ctx context.Context, host string) error {
	u, err := url.Parse(host)
	if err != nil {
		return err
	}
	target := u.Host
	ln, err := net.Listen("tcp", net.JoinHostPort(r.net.gateway.String(), "443"))
	if err != nil {
		return fmt.Errorf("API server forwarder: %w", err)
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return nil
}
