package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors: an *Error matches the one of its status with errors.Is.
var (
	ErrInvalid      = errors.New("client: the server refused the input")            // 400
	ErrUnauthorized = errors.New("client: credentials missing or refused")          // 401
	ErrForbidden    = errors.New("client: the credential's role does not allow it") // 403
	ErrNotFound     = errors.New("client: not found")                               // 404
	ErrConflict     = errors.New("client: conflict")                                // 409
	ErrTooLarge     = errors.New("client: request too large")                       // 413
	ErrRateLimited  = errors.New("client: rate limited")                            // 429
	ErrUnavailable  = errors.New("client: the broadcaster is unavailable")          // 503
)

// Error is an HTTP answer that is not a success. Message and Field are the
// server's "error" and "field" (the JSON field, header or parameter at
// fault, such as "revocations[3].jti" or "Idempotency-Key"), as sent.
type Error struct {
	// Method and Path say what was attempted ("POST", "/v1/revocations").
	Method, Path string
	Status       int
	Message      string
	Field        string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
	// Location is the Location header of a redirect.
	Location string
	// Header and Body are the answer's (the body bounded), for callers
	// that want more.
	Header http.Header
	Body   []byte
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), msg)
	if e.Field != "" {
		s += " [field " + e.Field + "]"
	}
	return s
}

// Is matches the sentinel error of the status.
func (e *Error) Is(target error) bool {
	switch e.Status {
	case http.StatusBadRequest:
		return target == ErrInvalid
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusRequestEntityTooLarge:
		return target == ErrTooLarge
	case http.StatusTooManyRequests:
		return target == ErrRateLimited
	case http.StatusServiceUnavailable:
		return target == ErrUnavailable
	}
	return false
}

// Temporary reports whether the same request may succeed later: 408, 429
// and 5xx.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// parseRetryAfter reads Retry-After in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
