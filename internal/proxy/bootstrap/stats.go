package bootstrap

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"mesh.dev/mesh/internal/proxy/match"
)

// StatsFilter is stats_config.stats_matcher compiled: which stat names the
// admin API shows (nil keeps all). notDone names the stats_config settings
// the proxy accepts without carrying out (its Prometheus tags are a fixed
// set: stats_tags, use_all_default_tags, histogram_bucket_settings), for
// the caller to report.
func StatsFilter(b *bootstrapv3.Bootstrap) (keep func(name string) bool, notDone []string, err error) {
	sc := b.GetStatsConfig()
	if sc == nil {
		return nil, nil, nil
	}
	if len(sc.GetStatsTags()) > 0 {
		notDone = append(notDone, "stats_config.stats_tags")
	}
	if sc.GetUseAllDefaultTags() != nil {
		notDone = append(notDone, "stats_config.use_all_default_tags")
	}
	if len(sc.GetHistogramBucketSettings()) > 0 {
		notDone = append(notDone, "stats_config.histogram_bucket_settings")
	}
	if sc.GetAllowDefaultTagOverrides() != nil {
		notDone = append(notDone, "stats_config.allow_default_tag_overrides")
	}
	sm := sc.GetStatsMatcher()
	if sm == nil {
		return nil, notDone, nil
	}
	compile := func(l *matcherv3.ListStringMatcher, f string) ([]*match.String, error) {
		var out []*match.String
		for i, p := range l.GetPatterns() {
			m, err := match.CompileString(p, fmt.Sprintf("%s.patterns[%d]", f, i))
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	anyMatch := func(ms []*match.String, name string) bool {
		for _, m := range ms {
			if m.Match(name) {
				return true
			}
		}
		return false
	}
	switch r := sm.GetStatsMatcher().(type) {
	case *metricsv3.StatsMatcher_RejectAll:
		if r.RejectAll {
			return func(string) bool { return false }, notDone, nil
		}
		return nil, notDone, nil
	case *metricsv3.StatsMatcher_ExclusionList:
		ms, err := compile(r.ExclusionList, "stats_config.stats_matcher.exclusion_list")
		if err != nil {
			return nil, nil, err
		}
		return func(n string) bool { return !anyMatch(ms, n) }, notDone, nil
	case *metricsv3.StatsMatcher_InclusionList:
		ms, err := compile(r.InclusionList, "stats_config.stats_matcher.inclusion_list")
		if err != nil {
			return nil, nil, err
		}
		return func(n string) bool { return anyMatch(ms, n) }, notDone, nil
	}
	return nil, notDone, nil
}
