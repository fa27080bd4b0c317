package validation

import "k8s.io/apimachinery/pkg/util/validation"

// The apimachinery name checks run a regular expression on every call,
// which was a tenth of a large offline analysis. These wrappers accept the
// common well-formed names with a byte loop and leave everything else,
// including every rejection and its message, to apimachinery, so the
// result is always the one apimachinery gives.

func dns1123Label(s string) []string {
	if len(s) <= 63 && plainLabel(s, false) {
		return nil
	}
	return validation.IsDNS1123Label(s)
}

func dns1123Subdomain(s string) []string {
	if len(s) > 0 && len(s) <= 253 {
		ok := true
		for start := 0; ok && start <= len(s); {
			end := start
			for end < len(s) && s[end] != '.' {
				end++
			}
			ok = plainLabel(s[start:end], false)
			start = end + 1
		}
		if ok {
			return nil
		}
	}
	return validation.IsDNS1123Subdomain(s)
}

func qualifiedName(s string) []string {
	if len(s) <= 63 && plainLabel(s, true) {
		return nil
	}
	return validation.IsQualifiedName(s)
}

func labelValue(s string) []string {
	if s == "" || (len(s) <= 63 && plainLabel(s, true)) {
		return nil
	}
	return validation.IsValidLabelValue(s)
}

// plainLabel reports whether s is non-empty, starts and ends with a
// lower-case letter or digit and has only those and '-' between; with
// label set (label keys and values) upper case, '_' and '.' are allowed
// too.
func plainLabel(s string, label bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (label && c >= 'A' && c <= 'Z')
		if alnum {
			continue
		}
		if i == 0 || i == len(s)-1 {
			return false
		}
		if c != '-' && !(label && (c == '_' || c == '.')) {
			return false
		}
	}
	return true
}
