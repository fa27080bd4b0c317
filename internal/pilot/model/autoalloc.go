package model

import (
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// AutoAllocatePrefix is where DNS auto-allocation takes the addresses of
// ServiceEntry hosts that have none: Istio's range, in the reserved class
// E space, so an allocated address can never be a real destination.
var AutoAllocatePrefix = netip.MustParsePrefix("240.240.0.0/16")

// autoAllocate gives every ServiceEntry host without addresses an address
// of AutoAllocatePrefix (Service.AutoAddress), as Istio's DNS
// auto-allocation does for proxies that ask for it: not wildcard hosts
// (no name to answer), not resolution NONE (the original destination is
// used, so a made-up one would go nowhere). The address comes from a hash
// of the host, so it stays while the host exists; on a collision the
// entry created first keeps it and the later one takes the next free one.
func (s *Snapshot) autoAllocate(ses []*networkingv1.ServiceEntry) {
	ordered := append([]*networkingv1.ServiceEntry(nil), ses...)
	sort.SliceStable(ordered, func(i, j int) bool {
		a, b := ordered[i], ordered[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	const size = 1 << 16
	used := map[uint32]bool{0: true, size - 1: true} // the network and broadcast addresses
	base := AutoAllocatePrefix.Addr().As4()
	for _, se := range ordered {
		for _, host := range se.Spec.Hosts {
			svc := s.servicesByHost[host]
			if svc == nil || svc.Namespace != se.Namespace || svc.Name != se.Name || svc.Address != "" ||
				strings.HasPrefix(host, "*") || svc.Resolution == ResolutionPassthrough || svc.AutoAddress != "" {
				continue
			}
			h := fnv.New32a()
			_, _ = h.Write([]byte(host))
			n := h.Sum32() % size
			for used[n] {
				n = (n + 1) % size
			}
			used[n] = true
			svc.AutoAddress = netip.AddrFrom4([4]byte{base[0], base[1], byte(n >> 8), byte(n)}).String()
		}
	}
}
