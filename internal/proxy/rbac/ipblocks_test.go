package rbac

import (
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A peer or local address a dual-stack listener reports IPv4-mapped
// (::ffff:198.18.0.3, as sidecars' inbound listeners do) is matched by
// the IPv4 blocks that contain it: an ALLOW on a pod's /32 lets that pod
// in, and a DENY on it keeps it out, whichever form the socket gave.
func TestIPBlocksMatchIPv4MappedAddresses(t *testing.T) {
	block := &corev3.CidrRange{AddressPrefix: "198.18.0.3", PrefixLen: wrapperspb.UInt32(32)}
	engine := func(action rbaccfg.RBAC_Action, p *rbaccfg.Principal, perm *rbaccfg.Permission) *Engine {
		e, err := CompileRules(&rbaccfg.RBAC{Action: action, Policies: map[string]*rbaccfg.Policy{"p": {
			Principals: []*rbaccfg.Principal{p}, Permissions: []*rbaccfg.Permission{perm},
		}}}, "rules")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	any := &rbaccfg.Permission{Rule: &rbaccfg.Permission_Any{Any: true}}
	anyone := &rbaccfg.Principal{Identifier: &rbaccfg.Principal_Any{Any: true}}
	local := netip.MustParseAddrPort("198.18.0.9:9080")
	for _, remote := range []string{"198.18.0.3:4000", "[::ffff:198.18.0.3]:4000"} {
		q := &Request{Remote: netip.MustParseAddrPort(remote), Local: local}
		other := &Request{Remote: netip.MustParseAddrPort("[::ffff:198.18.0.4]:4000"), Local: local}
		for name, p := range map[string]*rbaccfg.Principal{
			"direct_remote_ip": {Identifier: &rbaccfg.Principal_DirectRemoteIp{DirectRemoteIp: block}},
			"remote_ip":        {Identifier: &rbaccfg.Principal_RemoteIp{RemoteIp: block}},
			"source_ip":        {Identifier: &rbaccfg.Principal_SourceIp{SourceIp: block}}, //nolint:staticcheck // still sent by control planes
		} {
			if ok, _ := engine(rbaccfg.RBAC_ALLOW, p, any).Allowed(q); !ok {
				t.Errorf("ALLOW %s 198.18.0.3/32, peer %s: denied", name, remote)
			}
			if ok, _ := engine(rbaccfg.RBAC_DENY, p, any).Allowed(q); ok {
				t.Errorf("DENY %s 198.18.0.3/32, peer %s: allowed", name, remote)
			}
			if ok, _ := engine(rbaccfg.RBAC_ALLOW, p, any).Allowed(other); ok {
				t.Errorf("ALLOW %s 198.18.0.3/32, peer ::ffff:198.18.0.4: allowed", name)
			}
		}
	}
	dst := &rbaccfg.Permission{Rule: &rbaccfg.Permission_DestinationIp{DestinationIp: &corev3.CidrRange{AddressPrefix: "198.18.0.9", PrefixLen: wrapperspb.UInt32(32)}}}
	q := &Request{Remote: netip.MustParseAddrPort("198.18.0.3:4000"), Local: netip.MustParseAddrPort("[::ffff:198.18.0.9]:9080")}
	if ok, _ := engine(rbaccfg.RBAC_ALLOW, anyone, dst).Allowed(q); !ok {
		t.Error("ALLOW destination_ip 198.18.0.9/32, local ::ffff:198.18.0.9: denied")
	}
}
