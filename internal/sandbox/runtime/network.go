package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Address plan of one runtime: a /24 of the sandbox's pod range, claimed with
// a lock file so runtimes of test packages running side by side never share
// one. kwok's nodes use 198.18.N.0/24 for small N; runtimes take the top.
const (
	firstSubnet = 200
	lastSubnet  = 253
	lockDir     = "/run/mesh-sandbox-runtime"
)

// network is one runtime's pod network: a bridge on the host holding the
// gateway address, and a veth per pod into the pod's network namespace.
// Bridging keeps pod-to-pod traffic at layer 2, so the host needs no IP
// forwarding and pods have no route off the machine.
type network struct {
	subnet  int      // X of 198.18.X.0/24
	lock    *os.File // held for the runtime's life
	bridge  string
	gateway netip.Addr
	free    []netip.Addr
	// stateDir keeps the last address given (lockDir; a test's own folder).
	stateDir string
}

func run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkHost says what is missing for running pods for real.
func checkHost() error {
	if os.Geteuid() != 0 {
		return errors.New("the sandbox runtime needs root (network namespaces and veths)")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "setpriv", "unshare", "nsenter", "mount", "hostname", "sysctl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run tools/prereqs.sh as root (it installs iproute2 iptables util-linux mount hostname procps)", tool)
		}
	}
	return nil
}

// claimNetwork takes subnet want, or the first free subnet when want is
// 0, and builds its bridge, first removing what a runtime that died with
// that subnet left behind.
func claimNetwork(ctx context.Context, want int) (*network, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox runtime: %w", err)
	}
	from, to := firstSubnet, lastSubnet
	if want != 0 {
		if want < firstSubnet || want > lastSubnet {
			return nil, fmt.Errorf("sandbox runtime: subnet %d: want %d-%d (198.18.X.0/24)", want, firstSubnet, lastSubnet)
		}
		from, to = want, want
	}
	for x := from; x <= to; x++ {
		f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("subnet-%d.lock", x)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("sandbox runtime: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		n := &network{subnet: x, lock: f, bridge: fmt.Sprintf("msbr%d", x),
			gateway: netip.AddrFrom4([4]byte{198, 18, byte(x), 1})}
		// As host-local IPAM does, addresses are handed out round-robin from
		// the last one given, also across runtimes on this subnet: the API
		// server still lists the last runtime's pods at their addresses
		// until they are started again, and webhooks, endpoints and proxies
		// that dialled an old address must not reach a different pod there.
		n.stateDir = lockDir
		n.fillFree()
		// Deleting a namespace only unlinks its name: a dead runtime's
		// containers would run on beside ours, on our addresses.
		n.killLeftoverPods(ctx)
		n.removeLeftovers(ctx)
		if err := n.createBridge(ctx); err != nil {
			n.close(ctx)
			return nil, err
		}
		return n, nil
	}
	if want != 0 {
		return nil, fmt.Errorf("sandbox runtime: subnet 198.18.%d.0/24 is taken by a live runtime (lock %s)", want, filepath.Join(lockDir, fmt.Sprintf("subnet-%d.lock", want)))
	}
	return nil, fmt.Errorf("sandbox runtime: every subnet 198.18.%d-%d.0/24 is taken (locks in %s)", firstSubnet, lastSubnet, lockDir)
}

// CIDR is the runtime's pod range.
func (n *network) CIDR() string { return fmt.Sprintf("198.18.%d.0/24", n.subnet) }

func (n *network) nsPrefix() string { return fmt.Sprintf("msb%d-", n.subnet) }

// guardRange makes the whole benchmarking range unreachable from the host
// except through the runtimes' bridges (their /24s are more specific): the
// API server dials pod and Service addresses (webhooks, port-forward), and
// those of kwok's simulated pods must fail here rather than leave through
// the default route. The route is shared by every runtime and harmless to
// keep, so it is added when missing and never removed.
func guardRange(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "ip", "route", "show", "type", "unreachable", "198.18.0.0/15").Output()
	if err == nil && strings.Contains(string(out), "198.18.0.0/15") {
		return nil
	}
	if err := run(ctx, "ip", "route", "add", "unreachable", "198.18.0.0/15"); err != nil && !strings.Contains(err.Error(), "File exists") {
		return fmt.Errorf("sandbox runtime: %w", err)
	}
	return nil
}

func (n *network) createBridge(ctx context.Context) error {
	if err := guardRange(ctx); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "link", "add", n.bridge, "type", "bridge"},
		{"ip", "addr", "add", n.gateway.String() + "/24", "dev", n.bridge},
		{"ip", "link", "set", n.bridge, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return fmt.Errorf("sandbox runtime: pod network: %w", err)
		}
	}
	// Whatever the host's global setting, nothing entering from a pod is routed on.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+n.bridge+"/forwarding", []byte("0"), 0o644); err != nil {
		return fmt.Errorf("sandbox runtime: turn off forwarding on %s: %w", n.bridge, err)
	}
	// With br_netfilter loaded, frames between two pods on the bridge pass the
	// host's FORWARD chain, whose policy is often DROP (Docker sets it): let
	// this bridge's own traffic through.
	if b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil && strings.TrimSpace(string(b)) == "1" {
		if err := run(ctx, n.forwardRule("-I")...); err != nil {
			return fmt.Errorf("sandbox runtime: %w", err)
		}
	}
	return nil
}

func (n *network) forwardRule(op string) []string {
	return []string{"iptables", op, "FORWARD", "-i", n.bridge, "-o", n.bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "mesh sandbox runtime"}
}

// removeLeftovers deletes the namespaces and bridge of a dead runtime that
// held this subnet; the lock proves no live one does.
func (n *network) removeLeftovers(ctx context.Context) {
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), n.nsPrefix()) {
				_ = run(ctx, "ip", "netns", "del", e.Name())
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/" + n.bridge); err == nil {
		_ = run(ctx, "ip", "link", "del", n.bridge)
	}
	// A dead runtime's rule, or ours: remove every copy.
	for run(ctx, n.forwardRule("-D")...) == nil {
	}
}

func (n *network) close(ctx context.Context) {
	n.removeLeftovers(ctx)
	if n.lock != nil {
		n.lock.Close()
	}
}

func (n *network) allocate() (netip.Addr, error) {
	if len(n.free) == 0 {
		return netip.Addr{}, fmt.Errorf("no pod address left in %s", n.CIDR())
	}
	a := n.free[0]
	n.free = n.free[1:]
	// Best effort: a runtime that cannot write it starts from .2 next time.
	_ = os.WriteFile(n.lastGivenFile(), []byte(strconv.Itoa(int(a.As4()[3]))), 0o644)
	return a, nil
}

// fillFree lists the subnet's pod addresses, starting after the last given.
func (n *network) fillFree() {
	last := n.lastGiven()
	n.free = n.free[:0]
	for i := 0; i < 253; i++ {
		n.free = append(n.free, netip.AddrFrom4([4]byte{198, 18, byte(n.subnet), byte(2 + (last-1+i)%253)}))
	}
}

func (n *network) lastGivenFile() string {
	return filepath.Join(n.stateDir, fmt.Sprintf("subnet-%d.last", n.subnet))
}

// lastGiven is the last octet of the address last handed out on this
// subnet, 1 (none: start at .2) when unknown.
func (n *network) lastGiven() int {
	b, err := os.ReadFile(n.lastGivenFile())
	if err != nil {
		return 1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < 2 || v > 254 {
		return 1
	}
	return v
}

func (n *network) release(a netip.Addr) { n.free = append(n.free, a) }

// podNetwork is one pod's namespace and veth.
type podNetwork struct {
	ns   string
	veth string
	ip   netip.Addr
}

// addPod creates the pod's namespace holding ip on its eth0, wired to the
// bridge. Its only routes are the sandbox's pod and Service ranges, through
// the gateway: there is no default route.
func (n *network) addPod(ctx context.Context, id int, ip netip.Addr, sysctls map[string]string) (*podNetwork, error) {
	p := &podNetwork{ns: fmt.Sprintf("%s%d", n.nsPrefix(), id), veth: fmt.Sprintf("msv%d-%d", n.subnet, id), ip: ip}
	steps := [][]string{
		{"ip", "netns", "add", p.ns},
		{"ip", "link", "add", p.veth, "type", "veth", "peer", "name", "eth0", "netns", p.ns},
		{"ip", "link", "set", p.veth, "master", n.bridge, "up"},
		{"ip", "-n", p.ns, "link", "set", "lo", "up"},
		{"ip", "-n", p.ns, "addr", "add", ip.String() + "/24", "dev", "eth0"},
		{"ip", "-n", p.ns, "link", "set", "eth0", "up"},
		{"ip", "-n", p.ns, "route", "add", "198.18.0.0/15", "via", n.gateway.String(), "dev", "eth0"},
		// DNS auto-allocation's addresses (class E, never a destination):
		// a route, as a pod's default route gives, so a connection to one
		// gets past routing to the sidecar's capture; the bridge forwards
		// nothing, so an uncaptured one goes no further.
		{"ip", "-n", p.ns, "route", "add", "240.240.0.0/16", "via", n.gateway.String(), "dev", "eth0"},
	}
	for k, v := range sysctls {
		steps = append(steps, []string{"ip", "netns", "exec", p.ns, "sysctl", "-q", "-w", k + "=" + v})
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			n.removePod(context.WithoutCancel(ctx), p)
			return nil, fmt.Errorf("pod network: %w", err)
		}
	}
	return p, nil
}

// removePod deletes the namespace; the veth pair goes with it.
func (n *network) removePod(ctx context.Context, p *podNetwork) {
	_ = run(ctx, "ip", "netns", "del", p.ns)
	if _, err := os.Stat("/sys/class/net/" + p.veth); err == nil {
		_ = run(ctx, "ip", "link", "del", p.veth)
	}
}

// Leftovers is what RemoveLeftovers found: what it removed, and why it kept
// the shared route.
type Leftovers struct {
	// Removed names each process, namespace, bridge and route removed.
	Removed []string
	// Alive counts the runtimes still running (tests, another checkout's demo).
	Alive int
	// RouteKept says the pod range's unreachable route stayed for them.
	RouteKept bool
}

// RemoveLeftovers removes what runtimes that are no longer alive left on
// the host: their pods' processes, network namespaces, bridges and FORWARD
// rules, and the unreachable route of the pod range once no runtime at all
// is alive. A runtime stopped with Stop leaves nothing; one that was killed
// does.
func RemoveLeftovers(ctx context.Context) Leftovers {
	var l Leftovers
	for x := firstSubnet; x <= lastSubnet; x++ {
		f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("subnet-%d.lock", x)), os.O_RDWR, 0)
		if err != nil {
			continue // never used, or /run was emptied by a reboot
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			l.Alive++
			f.Close()
			continue
		}
		n := &network{subnet: x, bridge: fmt.Sprintf("msbr%d", x)}
		l.Removed = append(l.Removed, n.killLeftoverPods(ctx)...)
		if _, err := os.Stat("/sys/class/net/" + n.bridge); err == nil {
			l.Removed = append(l.Removed, "bridge "+n.bridge)
		}
		n.removeLeftovers(ctx)
		f.Close()
	}
	out, err := exec.CommandContext(ctx, "ip", "route", "show", "type", "unreachable", "198.18.0.0/15").Output()
	if err != nil || !strings.Contains(string(out), "198.18.0.0/15") {
		return l
	}
	if l.Alive > 0 {
		l.RouteKept = true
		return l
	}
	if run(ctx, "ip", "route", "del", "unreachable", "198.18.0.0/15") == nil {
		l.Removed = append(l.Removed, "route unreachable 198.18.0.0/15")
	}
	return l
}

// killLeftoverPods kills the processes still running in the subnet's pod
// namespaces (containers whose runtime was killed) and names the namespaces.
func (n *network) killLeftoverPods(ctx context.Context) []string {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), n.nsPrefix()) {
			continue
		}
		names = append(names, "namespace "+e.Name())
		out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", e.Name()).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				names = append(names, "process "+f)
			}
		}
	}
	return names
}
