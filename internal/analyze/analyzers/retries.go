package analyzers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// RetryBound is the number of attempts one request may turn into at the end
// of a call chain before MSH0001 reports it.
const RetryBound = 10

// maxChainDepth bounds the call chains followed, so cyclic or very deep
// graphs stay cheap.
const maxChainDepth = 8

// RetryAmplification reports call chains whose retries multiply (MSH0001).
//
// Model: a request enters at a workload and follows the call graph (see
// callGraph) from host to host. On the hop to host H the caller's proxy
// makes up to 1+attempts tries, where attempts is the largest
// retries.attempts of the mesh VirtualService routes for H. If the caller's
// pod template carries mesh.io/app-retries: N, the application repeats each
// call N more times, and each of those goes through its proxy's retries, so
// the hop costs (1+N)×(1+attempts). The worst case at the end of the chain
// is the product over its hops. Istio's default retry policy is left out:
// it only retries connection failures, which never reached the next hop's
// application, so it cannot multiply work further down.
type RetryAmplification struct{}

// Metadata describes the analyzer.
func (*RetryAmplification) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "retries.Amplification", Description: fmt.Sprintf("Checks that retries along a call chain cannot multiply one request into more than %d attempts", RetryBound),
		Codes: []*analyze.MessageType{analyze.RetryAmplification}}
}

type hopRetry struct {
	attempts int // 1 + retries
	vs       *analyze.Resource
}

// Analyze runs the checks.
func (*RetryAmplification) Analyze(ctx *analyze.Context) {
	g := buildCallGraph(ctx)
	if len(g.calls) == 0 {
		return
	}
	retries := map[string]hopRetry{}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok || !BoundToMesh(vs) {
			continue
		}
		worst := 1
		for _, h := range vs.Spec.Http {
			if h.Retries != nil && int(h.Retries.Attempts)+1 > worst {
				worst = int(h.Retries.Attempts) + 1
			}
		}
		for _, host := range vs.Spec.Hosts {
			fq := analyze.ResolveHost(host, r.Namespace)
			if cur, ok := retries[fq]; !ok || worst > cur.attempts {
				retries[fq] = hopRetry{worst, r}
			}
		}
	}
	// Workloads behind each host continue the chain.
	behind := map[string][]*analyze.Workload{}
	for _, svc := range ctx.Services() {
		behind[svc.Host] = ctx.ServiceWorkloads(svc)
	}
	w := &chainWalker{ctx: ctx, g: g, retries: retries, behind: behind, reported: map[string]bool{}}
	callers := make([]*analyze.Workload, 0, len(g.calls))
	for c := range g.calls {
		callers = append(callers, c)
	}
	sort.Slice(callers, func(i, j int) bool { return callers[i].Ref() < callers[j].Ref() })
	for _, c := range callers {
		w.walk(c, []chainHop{{label: workloadLabel(c)}}, map[string]bool{})
	}
}

type chainHop struct {
	label    string
	host     string
	factor   int
	proxy    hopRetry
	app      int
	caller   *analyze.Workload
	multiply bool
}

type chainWalker struct {
	ctx      *analyze.Context
	g        *callGraph
	retries  map[string]hopRetry
	behind   map[string][]*analyze.Workload
	reported map[string]bool
}

func (cw *chainWalker) walk(caller *analyze.Workload, chain []chainHop, onPath map[string]bool) {
	if len(chain) > maxChainDepth {
		cw.report(chain)
		return
	}
	progressed := false
	app := appRetries(caller)
	for _, host := range cw.g.callees(caller) {
		if onPath[host] {
			continue // a cycle: the chain ends here
		}
		progressed = true
		pr := cw.retries[host]
		if pr.attempts == 0 {
			pr.attempts = 1
		}
		hop := chainHop{label: shortHost(host), host: host, factor: (1 + app) * pr.attempts, proxy: pr, app: app, caller: caller}
		next := append(chain[:len(chain):len(chain)], hop)
		onPath[host] = true
		continued := false
		for _, w := range cw.behind[host] {
			if len(cw.g.calls[w]) > 0 {
				continued = true
				cw.walk(w, next, onPath)
			}
		}
		if !continued {
			cw.report(next)
		}
		delete(onPath, host)
	}
	if !progressed && len(chain) > 1 {
		cw.report(chain)
	}
}

func (cw *chainWalker) report(chain []chainHop) {
	product, factors := 1, 0
	var parts, labels []string
	var at *analyze.Resource
	for _, h := range chain {
		labels = append(labels, h.label)
		if h.host == "" {
			continue
		}
		product *= h.factor
		if h.proxy.attempts > 1 {
			factors++
			if at == nil {
				at = h.proxy.vs
			}
		}
		if h.app > 0 {
			factors++
			if at == nil {
				at = h.caller.Resource
			}
		}
		if h.factor > 1 {
			parts = append(parts, describeHop(h))
		}
	}
	if factors < 2 || product <= RetryBound || at == nil {
		return
	}
	key := strings.Join(labels, ">")
	if cw.reported[key] {
		return
	}
	cw.reported[key] = true
	last := chain[len(chain)-1].label
	cw.ctx.Report(analyze.RetryAmplification, at, "",
		"Retries multiply along the call chain %s: one request can reach %s %d times (%s), above the bound of %d. Retry at one hop only, or lower retries.attempts",
		strings.Join(labels, " -> "), last, product, strings.Join(parts, "; "), RetryBound)
}

func describeHop(h chainHop) string {
	var why []string
	if h.app > 0 {
		why = append(why, fmt.Sprintf("app retries %d (%s %s)", h.app, h.caller.Kind, h.caller.Name))
	}
	if h.proxy.attempts > 1 {
		why = append(why, fmt.Sprintf("proxy retries %d (VirtualService %s.%s)", h.proxy.attempts-1, h.proxy.vs.Name, h.proxy.vs.Namespace))
	}
	return fmt.Sprintf("%s x%d: %s", h.label, h.factor, strings.Join(why, " and "))
}

func appRetries(w *analyze.Workload) int {
	n, err := strconv.Atoi(w.Annotations[AppRetriesAnnotation])
	if err != nil || n < 0 || n > 100 {
		return 0
	}
	return n
}

func workloadLabel(w *analyze.Workload) string { return w.Name + "." + w.Namespace }

// shortHost shortens a cluster-local host to name.namespace.
func shortHost(h string) string {
	if s, ok := strings.CutSuffix(h, ".svc."+analyze.DomainSuffix); ok {
		return s
	}
	return h
}
