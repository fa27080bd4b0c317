package authz

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	securityapi "istio.io/api/security/v1beta1"
)

// FuzzTranslateRule: whatever rule a user writes, the translation neither
// panics nor produces RBAC mesh-proxy refuses (a NACK would stop the whole
// listener from updating), and an ALLOW rule it cannot carry out whole
// allows nobody.
func FuzzTranslateRule(f *testing.F) {
	for _, s := range []string{
		`{"from":[{"source":{"serviceAccounts":["bookinfo/productpage"],"notIpBlocks":["198.18.0.0/16"]}}]}`,
		`{"to":[{"operation":{"paths":["/a/{*}/b/{**}"],"ports":["80"],"hosts":["*.example"]}}]}`,
		`{"when":[{"key":"request.headers[x]","values":["*"]},{"key":"destination.port","notValues":["0"]}]}`,
		`{"when":[{"key":"source.ip","values":["::1/200"]}]}`,
		`{"from":[{"source":{"principals":["*"],"namespaces":["a*","*b"],"trustDomains":["*"]}}]}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, http bool) {
		rule := &securityapi.Rule{}
		if protojson.Unmarshal(data, rule) != nil {
			return
		}
		for _, deny := range []bool{false, true} {
			res := TranslateRule(rule, "bookinfo", http, deny)
			if !deny && len(res.Unenforced) > 0 && res.Permission != nil {
				t.Fatalf("ALLOW rule with unenforced parts %q still allows", res.Unenforced)
			}
			engine(t, rule, deny, http) // fails the test if mesh-proxy refuses it
		}
	})
}
