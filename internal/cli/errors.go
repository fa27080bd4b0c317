package cli

import (
	"errors"
	"fmt"
)

// Exit codes that scripts and CI branch on; see DESIGN.md.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 64
	ExitData     = 65
	ExitFindings = 79
)

// UsageError marks a mistake in how the command was called (flags, arguments).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// DataError marks input data (files, dumps, manifests) that cannot be used.
type DataError struct{ Err error }

func (e *DataError) Error() string { return e.Err.Error() }
func (e *DataError) Unwrap() error { return e.Err }

// FindingsError reports that `analyze` found messages at or above the failure threshold.
type FindingsError struct{ Count int }

func (e *FindingsError) Error() string {
	return fmt.Sprintf("analysis found %d issue(s) at or above the failure threshold", e.Count)
}

// SilentError carries an exit code for an outcome the command has already
// reported on its output (for example "the two manifests differ").
type SilentError struct{ Code int }

func (e *SilentError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Usage wraps err as a usage error (exit 64).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// Usagef formats a usage error (exit 64).
func Usagef(format string, args ...any) error { return &UsageError{Err: fmt.Errorf(format, args...)} }

// Data wraps err as a bad-input-data error (exit 65).
func Data(err error) error {
	if err == nil {
		return nil
	}
	return &DataError{Err: err}
}

// Dataf formats a bad-input-data error (exit 65).
func Dataf(format string, args ...any) error { return &DataError{Err: fmt.Errorf(format, args...)} }

// IsUsage reports whether err is, or wraps, a usage error.
func IsUsage(err error) bool { var u *UsageError; return errors.As(err, &u) }

// IsData reports whether err is, or wraps, a bad-input-data error.
func IsData(err error) bool { var d *DataError; return errors.As(err, &d) }
