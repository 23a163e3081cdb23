package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/jwtverify"
)

// verifier builds a JWT verifier from flags; its JWKS refresh is added to
// tasks, to run until the server's context ends.
func (v verifierFlags) verifier(logger *slog.Logger, what string, tasks *[]func(context.Context)) (*jwtverify.Verifier, error) {
	opts, err := jwtverify.KeySource{
		PublicKeyFiles: v.publicKeys, HMACSecretFile: v.hmacFile, JWKS: v.jwks,
		Algorithms: v.algs, Issuers: v.issuers, Audiences: v.audiences,
	}.Options()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ver, err := jwtverify.New(append(opts, jwtverify.WithLogger(logger))...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	*tasks = append(*tasks, ver.Run)
	return ver, nil
}

// operatorVerifier builds the verifier of operator JWTs, if configured.
func (sf *serverFlags) operatorVerifier(logger *slog.Logger, tasks *[]func(context.Context)) (auth.JWTVerifier, error) {
	if !sf.auth.configured() {
		if len(sf.auth.issuers)+len(sf.auth.audiences)+len(sf.auth.algs) > 0 {
			return nil, errors.New("--auth-issuer, --auth-audience and --auth-algs need --auth-jwks or --auth-public-key")
		}
		return nil, nil
	}
	if sf.auth.hmacFile != "" {
		return nil, errors.New("operator JWTs are verified with public keys only")
	}
	v, err := sf.auth.verifier(logger, "operator JWTs (--auth-jwks / --auth-public-key)", tasks)
	if err != nil {
		return nil, err
	}
	if sf.roleClaim == "" {
		return nil, errors.New("--auth-role-claim must name a claim")
	}
	return operatorJWTs{v: v, roleClaim: sf.roleClaim}, nil
}

// keyFileCheckInterval is how often the API key file is checked for
// changes.
var keyFileCheckInterval = 2 * time.Second

// operatorJWTs turns a verified operator JWT into a principal: its sub is
// the actor, the role claim its role, and its facts go along so that the
// broadcaster can hold it to its own revocations.
type operatorJWTs struct {
	v         *jwtverify.Verifier
	roleClaim string
}

func (o operatorJWTs) VerifyOperator(raw string) (auth.Principal, error) {
	c, err := o.v.Verify(raw)
	if err != nil {
		return auth.Principal{}, err
	}
	if c.Subject == "" {
		return auth.Principal{}, errors.New("operator JWT without sub")
	}
	role := roleOf(c.Raw[o.roleClaim])
	if role == auth.RoleNone {
		return auth.Principal{}, fmt.Errorf("operator JWT of %q has no reader or revoker role in claim %q", c.Subject, o.roleClaim)
	}
	tok := c.Token()
	return auth.Principal{Name: c.Subject, Role: role, Kind: "jwt", Token: &tok, Expires: c.ExpiresAt}, nil
}

// roleOf reads a role claim: "revoker", "reader", a list of them, or a
// space-separated string (as OAuth scopes are); the strongest wins.
func roleOf(v any) auth.Role {
	best := auth.RoleNone
	consider := func(s string) {
		if r, err := auth.ParseRole(s); err == nil && r > best {
			best = r
		}
	}
	switch x := v.(type) {
	case string:
		for _, f := range splitSpaces(x) {
			consider(f)
		}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				consider(s)
			}
		}
	}
	return best
}

func splitSpaces(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// tokenVerifier builds the verifier of tokens posted to POST /v1/revoke.
func (sf *serverFlags) tokenVerifier(logger *slog.Logger, tasks *[]func(context.Context)) (broadcaster.TokenVerifier, error) {
	if !sf.token.configured() {
		if len(sf.token.issuers)+len(sf.token.audiences)+len(sf.token.algs) > 0 {
			return nil, errors.New("--token-issuer, --token-audience and --token-algs need --token-jwks, --token-public-key or --token-hmac-secret-file")
		}
		return nil, nil
	}
	v, err := sf.token.verifier(logger, "tokens for POST /v1/revoke (--token-*)", tasks)
	if err != nil {
		return nil, err
	}
	return resourceTokens{v}, nil
}

type resourceTokens struct{ v *jwtverify.Verifier }

func (r resourceTokens) VerifyToken(raw string) (events.Token, time.Time, error) {
	c, err := r.v.Verify(raw)
	if err != nil {
		return events.Token{}, time.Time{}, err
	}
	return c.Token(), c.ExpiresAt, nil
}
