package accesslog

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseText: any format string either compiles or is refused with an
// error naming the field; a compiled one renders every entry without
// panicking, and as the value of a JSON format it always yields valid JSON.
func FuzzParseText(f *testing.F) {
	f.Add(EnvoyDefault)
	f.Add(IstioDefault)
	f.Add("%START_TIME(%Y %E6S %9f)% %REQ(:METHOD)%\n")
	f.Add("%REQ(USER-AGENT):10% %DYNAMIC_METADATA(a:b:c)%")
	f.Add("%BOGUS%")
	f.Add("100%% done")
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := ParseText(s, "access_log")
		if err != nil {
			if !strings.Contains(err.Error(), "access_log") {
				t.Fatalf("error %v does not name the field", err)
			}
			return
		}
		fm.Append(nil, sampleEntry())
		fm.Append(nil, &Entry{Protocol: "TCP"})
		if !utf8.ValidString(s) {
			return // proto strings (json_format values) are UTF-8 by definition
		}
		jf, err := ParseJSONMap(map[string]string{"v": s}, "access_log")
		if err != nil {
			t.Fatalf("compiles as text but not as a JSON value: %v", err)
		}
		line := jf.Append(nil, sampleEntry())
		if !json.Valid(line) {
			t.Fatalf("invalid JSON for %q: %s", s, line)
		}
	})
}
