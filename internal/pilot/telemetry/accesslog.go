package telemetry

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/celexpr"
	"mesh.dev/mesh/internal/proxy/accesslog"
)

// legacy is the pseudo provider standing for meshConfig.accessLogFile.
const legacy = ""

// AccessLogs are the access_log entries of one listener class of a proxy,
// with a key that is equal exactly when the entries are.
type AccessLogs struct {
	Logs []*accesslogv3.AccessLog
	Key  string
}

type logChoice struct {
	disabled bool
	filter   string
}

// AccessLogs resolves the access logs of w's listeners of class c:
// Telemetry accessLogging entries whose match mode takes in c, least
// specific first, each setting (or disabling) its providers, so a
// workload's entry overrides its namespace's, which overrides the root
// namespace's. An entry naming no provider means the mesh's default
// providers (defaultProviders.accessLogging); without those, the
// meshConfig accessLogFile logger, so `accessLogging: [{disabled: true}]`
// turns off the file log the mesh config asked for. Without any entry the
// defaults apply as they are.
func (p *Policy) AccessLogs(w Workload, c Class) AccessLogs {
	defaults := p.Mesh.GetDefaultProviders().GetAccessLogging()
	if len(defaults) == 0 && p.Mesh.GetAccessLogFile() != "" {
		defaults = []string{legacy}
	}
	state := map[string]logChoice{}
	for _, t := range p.applicable(w) {
		for _, al := range t.Spec.GetAccessLogging() {
			if !c.matches(al.GetMatch().GetMode()) {
				continue
			}
			names := defaults
			if len(al.GetProviders()) > 0 {
				names = nil
				for _, pr := range al.GetProviders() {
					names = append(names, pr.GetName())
				}
			}
			for _, n := range names {
				state[n] = logChoice{disabled: al.GetDisabled().GetValue(), filter: al.GetFilter().GetExpression()}
			}
		}
	}
	if len(state) == 0 {
		for _, n := range defaults {
			state[n] = logChoice{}
		}
	}
	names := make([]string, 0, len(state))
	for n := range state {
		names = append(names, n)
	}
	sort.Strings(names)
	var out AccessLogs
	var key strings.Builder
	for _, n := range names {
		ch := state[n]
		if ch.disabled {
			continue
		}
		var al *accesslogv3.AccessLog
		if n == legacy {
			al, _ = meshAccessLog(p.Mesh) // checked by ParseMesh
		} else if pr := provider(p.Mesh, n); pr != nil && pr.GetEnvoyFileAccessLog() != nil {
			al, _ = fileProviderLog(pr.GetEnvoyFileAccessLog(), "")
		}
		if al == nil {
			continue // not a file logger: reported by Problems
		}
		if ch.filter != "" {
			if checkCEL(ch.filter) != nil {
				continue // reported by Problems; an unparsable filter logs nothing rather than everything
			}
			al.Filter = celFilter(ch.filter)
		}
		out.Logs = append(out.Logs, al)
		fmt.Fprintf(&key, "%q=%q;", n, ch.filter)
	}
	out.Key = key.String()
	return out
}

func (p *Policy) logProviderProblem(name string) string {
	pr := provider(p.Mesh, name)
	switch {
	case pr == nil:
		return fmt.Sprintf("no extension provider %q in the mesh config; nothing is logged for it", name)
	case pr.GetEnvoyFileAccessLog() == nil:
		return fmt.Sprintf("provider %q is not an envoyFileAccessLog provider; only file access logs are written", name)
	}
	return ""
}

func checkCEL(expr string) error {
	_, err := celexpr.Parse(expr)
	return err
}

func celFilter(expr string) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
		Name:       "envoy.access_loggers.extension_filters.cel",
		ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: expr})},
	}}}
}

// meshAccessLog is the logger meshConfig accessLogFile, accessLogEncoding
// and accessLogFormat describe: Istio's default text or JSON format unless
// a format is given (a JSON object of field → command operators for JSON).
func meshAccessLog(mc *meshconfig.MeshConfig) (*accesslogv3.AccessLog, error) {
	var lf *corev3.SubstitutionFormatString
	custom := mc.GetAccessLogFormat()
	switch mc.GetAccessLogEncoding() {
	case meshconfig.MeshConfig_JSON:
		fields := accesslog.IstioDefaultJSON
		if custom != "" {
			fields = nil
			if err := json.Unmarshal([]byte(custom), &fields); err != nil {
				return nil, fmt.Errorf("accessLogFormat: with accessLogEncoding JSON the format is a JSON object of field names to command operators: %v", err)
			}
		}
		st, err := jsonStruct(fields)
		if err != nil {
			return nil, fmt.Errorf("accessLogFormat: %w", err)
		}
		lf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: st}}
	default:
		text := accesslog.IstioDefault
		if custom != "" {
			text = custom
		}
		lf = textFormat(text)
	}
	if err := checkFormat(lf, "accessLogFormat"); err != nil {
		return nil, err
	}
	return fileLog(mc.GetAccessLogFile(), lf), nil
}

// fileProviderLog is an envoyFileAccessLog provider's logger: its text
// format, its labels as a JSON format, or Istio's default text format.
func fileProviderLog(fl *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider, field string) (*accesslogv3.AccessLog, error) {
	if fl.GetPath() == "" {
		return nil, fmt.Errorf("%s.path: a file access log needs a path (/dev/stdout for the proxy's output)", field)
	}
	if fl.GetOmitEmptyValues() {
		return nil, fmt.Errorf("%s.omitEmptyValues: not supported", field)
	}
	lf := textFormat(accesslog.IstioDefault)
	switch {
	case fl.GetLogFormat().GetText() != "":
		lf = textFormat(fl.GetLogFormat().GetText())
	case fl.GetLogFormat().GetLabels() != nil:
		lf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: fl.GetLogFormat().GetLabels()}}
	}
	if err := checkFormat(lf, field+".logFormat"); err != nil {
		return nil, err
	}
	return fileLog(fl.GetPath(), lf), nil
}

// textFormat ends a text format with a newline, as Istio does, so lines
// do not run together.
func textFormat(s string) *corev3.SubstitutionFormatString {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
		TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}},
	}}
}

func jsonStruct(fields map[string]string) (*structpb.Struct, error) {
	m := make(map[string]any, len(fields))
	for k, v := range fields {
		m[k] = v
	}
	return structpb.NewStruct(m)
}

// checkFormat parses a format as mesh-proxy will, so a bad operator is
// caught here, naming the mesh config field.
func checkFormat(lf *corev3.SubstitutionFormatString, field string) error {
	var err error
	switch f := lf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormatSource:
		_, err = accesslog.ParseText(f.TextFormatSource.GetInlineString(), field)
	case *corev3.SubstitutionFormatString_JsonFormat:
		_, err = accesslog.ParseJSON(f.JsonFormat, field)
	}
	return err
}

func fileLog(path string, lf *corev3.SubstitutionFormatString) *accesslogv3.AccessLog {
	fl := &filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: lf}}
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(fl)}}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // generated messages always marshal
	}
	return a
}
