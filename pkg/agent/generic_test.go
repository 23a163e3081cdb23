package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestGenericErrors: with WithGenericErrors the middleware answers every
// refused token alike, so that a token's holder cannot tell "revoked" from
// "invalid" nor read a library's error; without it, the reason is given.
func TestGenericErrors(t *testing.T) {
	a := syncedAgent(t, rsaOpts(t)...)
	feed(t, a, revokeEvent(t, `{"jti":"stolen"}`))
	expired := claims("alice", "old")
	expired["iat"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	tokens := map[string]string{
		"revoked":      rs256(t, claims("alice", "stolen"), ""),
		"expired":      rs256(t, expired, ""),
		"wrong alg":    hs256(t, claims("alice", "hs")),
		"not a token":  "garbage",
		"wrong issuer": rs256(t, jwt.MapClaims{"sub": "alice", "iss": "elsewhere", "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}, ""),
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	answer := func(h http.Handler, tok string) (int, string, string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body.String()
	}
	for _, generic := range []bool{true, false} {
		name := "detailed"
		var opts []MiddlewareOption
		if generic {
			name = "generic"
			opts = append(opts, WithGenericErrors())
		}
		t.Run(name, func(t *testing.T) {
			h := a.Middleware(ok, opts...)
			seen := map[string]string{}
			for what, tok := range tokens {
				code, challenge, body := answer(h, tok)
				if code != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
					t.Fatalf("%s: %d %q", what, code, challenge)
				}
				seen[challenge+"\n"+body] = what
				if generic {
					for _, leak := range []string{"revoked", "expired", "signature", "algorithm", "issuer", "malformed", "token is"} {
						if strings.Contains(strings.ToLower(challenge+body), leak) {
							t.Fatalf("%s: the answer says %q: %q %s", what, leak, challenge, body)
						}
					}
				}
			}
			switch {
			case generic && len(seen) != 1:
				t.Fatalf("generic answers differ: %q", seen)
			case !generic && len(seen) != len(tokens):
				t.Fatalf("detailed answers should say why: %q", seen)
			}
		})
	}
}
