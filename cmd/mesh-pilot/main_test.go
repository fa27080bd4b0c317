package main

import (
	"bytes"
	"strings"
	"testing"
)

// A bad mesh-wide rollout default stops mesh-pilot before it starts,
// naming the flag and what to write.
func TestBadRolloutDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rollout-stages=10,50", "--rollout-interval=1m"}, `--rollout-stages: "10,50": the last stage must be 100`},
		{[]string{"--rollout-stages=10,100"}, "--rollout-interval"},
		{[]string{"--rollout-max-latency-increase=1.5"}, `--rollout-max-latency-increase: "1.5": set without --rollout-stages`},
		{[]string{"--jwks-fetch-mode=proxy"}, `--jwks-fetch-mode (or PILOT_JWT_ENABLE_REMOTE_JWKS) "proxy": want istiod (or false), hybrid (or true) or envoy`},
	} {
		var out bytes.Buffer
		cmd := newCommand(&out, &out)
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mesh-pilot %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
