package main

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/revocast/revocast/pkg/agent"
)

// The sidecar names the holder of an admitted token to the proxy in
// X-Auth-Subject and X-Auth-Issuer, and the denylist decided on the token's
// sub and iss. Both must be the same bytes: were the sidecar, net/http or a
// proxy to strip a control character or trim white space, a token for
// "mallory\x00" or " mallory", which a ban on "mallory" does not match,
// would reach the service as mallory. So a token whose sub or iss a header
// cannot carry unchanged is refused, never mended.
//
// A value passes when it is valid UTF-8, holds no control character (C0,
// which includes NUL, TAB, CR and LF, then DEL and C1), and neither starts
// nor ends with white space (SP, and any Unicode White_Space character or
// U+FEFF, which String.trim in JavaScript, strip in Python and Trim in .NET
// remove once an upstream decodes the header as UTF-8). Characters beyond
// ASCII are otherwise admitted: net/http, nginx, Envoy, Traefik, Caddy and
// HTTP/2 pass such bytes (obs-text) unchanged, so an identity like "müller"
// reaches the service byte for byte, and refusing it would lock out every
// issuer that writes names in other scripts. The service must read the
// header as UTF-8 bytes to compare it with the names revocations use.
//
// The introspection answer is JSON, which carries any string exactly, but
// it applies the same rule: a token has one verdict at the sidecar, and a
// service that introspects may forward sub in a header of its own.

// errUnsendable is the reason of a token refused for its sub or iss.
var errUnsendable = errors.New("cannot be passed upstream in a header unchanged")

// checkIdentity refuses, as an invalid token, one whose sub or iss cannot
// travel in a header value byte for byte.
func checkIdentity(c *agent.Claims) error {
	for _, f := range [...]struct{ name, v string }{{"sub", c.Subject}, {"iss", c.Issuer}} {
		if err := headerExact(f.v); err != nil {
			return &agent.InvalidError{Reason: fmt.Errorf("%s %w: %w", f.name, errUnsendable, err)}
		}
	}
	return nil
}

// headerExact returns nil when s travels as an HTTP header value unchanged,
// and otherwise says why not.
func headerExact(s string) error {
	ascii := true
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= utf8.RuneSelf {
			ascii = false
			break
		}
		if b < 0x20 || b == 0x7f {
			return fmt.Errorf("control character %U", rune(b))
		}
	}
	if !ascii {
		if !utf8.ValidString(s) {
			return errors.New("not valid UTF-8")
		}
		for _, r := range s {
			if unicode.IsControl(r) {
				return fmt.Errorf("control character %U", r)
			}
		}
	}
	if s == "" {
		return nil
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if trimmed(first) || trimmed(last) {
		return errors.New("leading or trailing white space")
	}
	return nil
}

// trimmed reports whether r is white space that some header or string
// handling trims from the ends of a value.
func trimmed(r rune) bool {
	return unicode.IsSpace(r) || r == '\ufeff'
}
