#!/usr/bin/env bash
# Checks what `make demo` and `make test` need before anything is built, and
# installs the missing Debian packages when it can (root and apt-get);
# otherwise it prints the one command to run and stops. Run by `.ci/run`,
# `make demo`, `make test` and `make bench`. It changes nothing when all is
# there, and then takes well under a second (docs/sandbox.md).
#
#   tools/prereqs.sh demo   the demo: everything below is required
#   tools/prereqs.sh test   the tests: without root the network-namespace
#                           tests skip, so root and the kernel checks are
#                           only reported
#   tools/prereqs.sh bench  what test needs, and the baselines `make bench`
#                           measures mesh-proxy against (haproxy, nginx)
set -uo pipefail
mode=${1:-demo}
case $mode in demo | test | bench) ;; *) echo "usage: tools/prereqs.sh demo|test|bench" >&2; exit 64 ;; esac
cd "$(dirname "$0")/.."

fail() { echo "prereqs: $*" >&2; exit 1; }
# Non-root shells on Debian often lack the sbin folders, where ip and iptables live.
PATH=$PATH:/usr/sbin:/sbin

command -v go >/dev/null || fail "go not found: install Go (https://go.dev/doc/install), then run make again"

# The commands the sandbox runtime, mesh-proxy's init and the tests run, and
# the Debian package holding each (grep exec.Command in internal/ and e2e/).
declare -A pkg=(
  [ip]=iproute2 [iptables]=iptables [iptables-restore]=iptables
  [setpriv]=util-linux [unshare]=util-linux [nsenter]=util-linux [flock]=util-linux
  [mount]=mount [hostname]=hostname [sysctl]=procps [git]=git
)
if [ "$mode" = bench ]; then
  pkg[haproxy]=haproxy pkg[nginx]=nginx
  mode=test # from here on, bench needs what the tests need
fi
missing=()
for c in "${!pkg[@]}"; do command -v "$c" >/dev/null || missing+=("${pkg[$c]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "prereqs: installing ${missing[*]} (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      fail "apt-get install ${missing[*]} failed (see above)"
  elif command -v apt-get >/dev/null; then
    fail "missing packages; run: sudo apt-get install -y ${missing[*]}"
  else
    fail "missing commands from the Debian packages ${missing[*]}: install them with your system's package manager"
  fi
fi

# Free disk where Go keeps its caches: a cold build of the sandbox's binaries
# fills about 5.5 GB of build cache and 1.7 GB of modules, the mesh's own
# about 1.5 GB (measured, docs/sandbox.md).
need_gb=2
ls tools/bin/.stamp-* >/dev/null 2>&1 || need_gb=10
cache=$(go env GOCACHE)
while [ ! -d "$cache" ]; do cache=$(dirname "$cache"); done
free_gb=$(( $(df -Pk "$cache" | awk 'NR==2{print $4}') / 1024 / 1024 ))
[ "$free_gb" -ge "$need_gb" ] ||
  fail "only ${free_gb} GiB free in $cache; the build needs about ${need_gb} GiB: free some space (go clean -cache removes old builds)"

if [ "$(id -u)" != 0 ]; then
  [ "$mode" = test ] && { echo "prereqs: not root: the tests that run pods in network namespaces will skip (sudo make test runs them)"; exit 0; }
  fail "the demo runs its pods as processes in network namespaces of their own, which needs root: run sudo make demo"
fi

# Kernel features, tried in a throwaway namespace so the host is untouched.
ns=mesh-prereqs-$$
trap 'ip netns del $ns 2>/dev/null' EXIT
out=$(ip netns add $ns 2>&1) ||
  fail "cannot create a network namespace ($out): the kernel needs CONFIG_NET_NS, and a container needs CAP_SYS_ADMIN (docker run --privileged)"
out=$(ip -n $ns link add mpv0 type veth peer name mpv1 2>&1) ||
  fail "cannot create a veth pair ($out): load the module with modprobe veth"
out=$(ip -n $ns link add mpbr0 type bridge 2>&1) ||
  fail "cannot create a bridge ($out): load the module with modprobe bridge"
out=$(printf '*nat\n:MESHPRE -\n-A MESHPRE -p tcp -m owner --uid-owner 1337 -j RETURN\n-A MESHPRE -p tcp -m comment --comment mesh -j REDIRECT --to-ports 15001\nCOMMIT\n' |
  ip netns exec $ns iptables-restore 2>&1) ||
  fail "the iptables nat table (owner match, REDIRECT) does not work ($out): load the modules with modprobe -a iptable_nat xt_owner xt_REDIRECT xt_comment, or install the nftables kernel support iptables-nft needs"
out=$(unshare --mount --uts true 2>&1) ||
  fail "cannot create mount and UTS namespaces ($out)"
exit 0
