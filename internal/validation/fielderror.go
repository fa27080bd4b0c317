// Package validation checks Istio configuration resources: their shape against
// the API schema (unknown fields, wrong types, missing required fields) and
// their meaning (hosts, ports, weights, matches, TLS settings...). Both
// `mesh analyze` and the pilot's validating webhook call it.
package validation

import (
	"fmt"
	"strconv"
)

// FieldError is one problem with one field of a resource.
type FieldError struct {
	// Field is the path of the field, e.g. spec.http[0].route[1].weight.
	Field string `json:"field"`
	// Message says what is wrong and what is expected.
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// list collects errors and warnings while checking one resource.
type list struct {
	errs  []FieldError
	warns []FieldError
}

func (l *list) err(field, format string, args ...any) {
	l.errs = append(l.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (l *list) warn(field, format string, args ...any) {
	l.warns = append(l.warns, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func idx(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func key(path, k string) string { return path + "[" + strconv.Quote(k) + "]" }
