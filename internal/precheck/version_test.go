package precheck

import (
	"strings"
	"testing"
)

func TestJudgeVersion(t *testing.T) {
	cases := []struct {
		v       string
		passed  bool
		warning bool
		says    string
	}{
		{"v1.34.4", true, false, "supported"},
		{"v1.30.0-eks-1234", true, false, "supported"},
		{"v1.29.9", false, false, "older"},
		{"v1.38.0", false, true, "newer"},
		{"v2.0.0", false, false, "older"},
		{"garbage", false, false, "does not parse"},
	}
	for _, c := range cases {
		r := judgeVersion(c.v)
		if r.Passed != c.passed || r.Warning != c.warning || !strings.Contains(r.Message, c.says) {
			t.Errorf("%s: %+v", c.v, r)
		}
		if !r.Passed && r.Remedy == "" {
			t.Errorf("%s: failed without a remedy", c.v)
		}
	}
}

func TestSummarizeDeniedGroupsVerbs(t *testing.T) {
	got := summarizeDenied([]Access{
		{Verb: "create", Group: "apps", Resource: "deployments", Namespace: "mesh-system"},
		{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "mesh-system"},
		{Verb: "delete", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
	})
	want := []string{
		"create, patch deployments.apps in namespace mesh-system",
		"delete customresourcedefinitions.apiextensions.k8s.io (cluster-wide)",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
