package warden

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FieldError is a configuration error at one key path, for example
// `roles.analyst.grants[0].backend: unknown backend "shp"`.
type FieldError struct {
	Path    string
	Message string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// FieldErrorf returns a FieldError at path.
func FieldErrorf(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Message: fmt.Sprintf(format, args...)}
}

// Under prefixes the path of every FieldError in err with prefix, so a
// package can validate its own config with relative paths and its consumer
// can place them in the whole file.
func Under(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var errs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			p := prefix
			if fe.Path != "" {
				if strings.HasPrefix(fe.Path, "[") {
					p += fe.Path
				} else {
					p += "." + fe.Path
				}
			}
			out = append(out, &FieldError{Path: p, Message: fe.Message})
			continue
		}
		out = append(out, &FieldError{Path: prefix, Message: e.Error()})
	}
	return errors.Join(out...)
}

// Duration is a time.Duration that decodes from YAML strings such as
// "5s", "10m" or "90d" (days).
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ParseDuration parses a Go duration, also accepting a whole number of
// days ("90d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid duration %q (use forms like 5s, 10m, 90d)", s)
	}
	return v, nil
}

func (d Duration) String() string { return time.Duration(d).String() }
