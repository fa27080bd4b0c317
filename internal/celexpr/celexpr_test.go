package celexpr

import (
	"strings"
	"testing"
)

type obj map[string]any

func (o obj) Field(n string) (any, bool) { v, ok := o[n]; return v, ok }

func vars() Object {
	return obj{
		"response":   obj{"code": int64(503), "flags": "UF"},
		"request":    obj{"method": "GET", "url_path": "/api/v1beta3/x", "headers": map[string]string{"x-log": "true"}},
		"connection": obj{"mtls": true},
	}
}

func TestEval(t *testing.T) {
	cases := map[string]bool{
		"response.code >= 400":                        true,
		"response.code >= 400 && response.code < 500": false,
		"(connection.mtls && request.headers['x-log'] == 'true') || request.url_path.contains('v1beta3')": true,
		"request.method in ['POST', 'PUT']":                                      false,
		"!(request.method == 'POST')":                                            true,
		"request.url_path.startsWith('/api') && request.url_path.endsWith('/x')": true,
		"request.url_path.matches('^/api/v[0-9]')":                               true,
		"has(request.headers.x_missing)":                                         false,
		"'x-log' in request.headers":                                             true,
		"size(request.method) == 3 && request.method.size() == 3":                true,
		"response.code / 100 == 5 && response.code % 100 == 3":                   true,
		"response.code == 503 ? true : false":                                    true,
		"int('7') + 1 == 8 && string(response.code) == '503'":                    true,
		"response.code == 503.0 && 1u < 2":                                       true,
		// Errors are false: a missing header, a type mismatch.
		"request.headers['nope'] == 'x'":             false,
		"response.code == 'x' || request.method > 3": false,
		// An error absorbed by || / &&, as in CEL.
		"request.headers['nope'] == 'x' || response.code == 503": true,
		"request.headers['nope'] == 'x' && response.code == 200": false,
	}
	for src, want := range cases {
		e, err := Parse(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if got := e.Matches(vars()); got != want {
			v, err := e.Eval(vars())
			t.Errorf("%s = %v (%v, %v), want %v", src, got, v, err, want)
		}
	}
}

func TestParseRefusesOutsideTheSubset(t *testing.T) {
	for src, want := range map[string]string{
		"request.headers.exists(h, h == 'x')": "method exists is not in the supported CEL subset",
		"timestamp('2020-01-01T00:00:00Z')":   "function timestamp is not in the supported CEL subset",
		"{'a': 1}":                            "not part of the supported CEL subset",
		"response.code >=":                    "unexpected end",
		"'unterminated":                       "unterminated string",
		"a b":                                 "unexpected \"b\"",
	} {
		_, err := Parse(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("response.code >= 400")
	f.Add("(connection.mtls && request.headers['x'] == 'true') || request.url_path.contains('v1')")
	f.Add("[1, 2u, 3.0, 'x', null][0] == 1 ? !true : -1 > 2")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		e.Matches(vars())
		e.Matches(nil)
	})
}
