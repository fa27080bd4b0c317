package listener

import (
	"strings"
	"testing"
)

func FuzzCompileLogFormat(f *testing.F) {
	f.Add(DefaultFormat)
	f.Add("%START_TIME% %REQ(:METHOD)%\n")
	f.Add("%BOGUS%")
	f.Add("100%% done")
	f.Fuzz(func(t *testing.T, s string) {
		parts, err := compileLogFormat(s, "access_log")
		if err != nil {
			if !strings.Contains(err.Error(), "access_log") {
				t.Fatalf("error %v does not name the field", err)
			}
			return
		}
		var b strings.Builder
		(&accessLog{w: &b, parts: parts}).write(&Request{Method: "GET", Path: "/"})
	})
}
