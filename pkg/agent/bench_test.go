package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/cache"
)

// benchAgent is a synced agent with a few revocations of other tokens, so
// the denylist lookups are real.
func benchAgent(b *testing.B, opts ...Option) *Agent {
	a := syncedAgent(b, opts...)
	for i := range 100 {
		feed(b, a, revokeEvent(b, fmt.Sprintf(`{"jti":"bench-other-%d"}`, i)))
	}
	feed(b, a, revokeEvent(b, `{"sub":"someone-else"}`), revokeEvent(b, `{"kid":"bad-kid"}`))
	return a
}

type benchAlg struct {
	name   string
	method jwt.SigningMethod
	priv   any
	opts   []Option
}

func benchAlgs(b *testing.B) []benchAlg {
	k := getKeys(b)
	return []benchAlg{
		{"HS256", jwt.SigningMethodHS256, k.hmac, []Option{WithAlgorithms("HS256"), WithHMACSecret(k.hmac)}},
		{"RS256", jwt.SigningMethodRS256, k.rsa, []Option{WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey)}},
		{"ES256", jwt.SigningMethodES256, k.ec, []Option{WithAlgorithms("ES256"), WithPublicKeys(&k.ec.PublicKey)}},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, []Option{WithAlgorithms("EdDSA"), WithPublicKeys(k.ed.Public())}},
	}
}

// BenchmarkCheck: "fresh" verifies the signature on every call (the
// verified-token cache is off), "repeat" is a token seen before.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	for _, alg := range benchAlgs(b) {
		tok := mint(b, alg.method, alg.priv, claims("alice", "bench"), "kid-1")
		b.Run(alg.name+"/fresh", func(b *testing.B) {
			a := benchAgent(b, append(alg.opts, WithVerifiedCacheCapacity(0))...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Check(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg.name+"/repeat", func(b *testing.B) {
			a := benchAgent(b, alg.opts...)
			if _, err := a.Check(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Check(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMiddleware: the net/http middleware for each algorithm. "fresh"
// is a token the agent has not seen (the verified-token cache is off, so the
// signature is verified on every request), "repeat" a token it has: the
// cache skips the signature, the revocation check still runs.
func BenchmarkMiddleware(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, alg := range benchAlgs(b) {
		tok := mint(b, alg.method, alg.priv, claims("alice", "bench-mw"), "kid-1")
		for _, mode := range []struct {
			name     string
			capacity int
		}{{"fresh", 0}, {"repeat", cache.DefaultVerifiedCapacity}} {
			b.Run(alg.name+"/"+mode.name, func(b *testing.B) {
				a := benchAgent(b, append(alg.opts, WithVerifiedCacheCapacity(mode.capacity))...)
				h := a.Middleware(next)
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				w := &nopWriter{h: http.Header{}}
				h.ServeHTTP(w, req) // a repeat token has been seen once
				b.ReportAllocs()
				for b.Loop() {
					h.ServeHTTP(w, req)
					if w.code != 0 {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		}
	}
}

type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }
