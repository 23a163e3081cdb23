package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// Tests of the ways a revoked or unrevocable token used to be admitted. Each
// names the bypass it closes.

// jwksAgent is a synced agent whose JWKS (served over loopback HTTP) holds
// keys and has been loaded.
func jwksAgent(t *testing.T, set jwkset.JWKSMarshal, opts ...Option) *Agent {
	t.Helper()
	js := newJWKSServer(t)
	js.mu.Lock()
	js.set = set
	js.mu.Unlock()
	a := syncedAgent(t, append([]Option{WithJWKS(js.URL), WithJWKSRefresh(time.Hour, time.Hour)}, opts...)...)
	if err := a.verifier.Refresh(context.Background()); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	return a
}

// jwk returns the JWK of a public key with a kid and metadata.
func jwk(t *testing.T, pub any, kid string, mod func(*jwkset.JWKMarshal)) jwkset.JWKMarshal {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
	if err != nil {
		t.Fatal(err)
	}
	m := j.Marshal()
	if mod != nil {
		mod(&m)
	}
	return m
}

func applyRevocation(t *testing.T, a *Agent, rev string) {
	t.Helper()
	feed(t, a, revokeEvent(t, rev))
}

// TestKidRevocationMatchesTheVerifyingKey: a kid revocation retires a key,
// whatever header the holder of that key writes (bypass 1).
func TestKidRevocationMatchesTheVerifyingKey(t *testing.T) {
	k := getKeys(t)
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{
		jwk(t, &k.rsa.PublicKey, "k1", nil),
		jwk(t, &k.rsa2.PublicKey, "k2", nil),
	}}
	tp1, err := Thumbprint(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tp2, err := Thumbprint(&k.rsa2.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	signedBy1 := func(jti, kid string) string {
		return mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice", jti), kid)
	}
	signedBy2 := func(jti, kid string) string {
		return mint(t, jwt.SigningMethodRS256, k.rsa2, claims("alice", jti), kid)
	}
	tests := []struct {
		name string
		pem  bool // the agent trusts both keys as PEM keys instead of a JWKS
		rev  string
		tok  string
		want error
	}{
		{"jwks: kid-less token of the revoked key", false, `{"kid":"k1"}`, signedBy1("a1", ""), ErrRevoked},
		{"jwks: token of the revoked key with its kid", false, `{"kid":"k1"}`, signedBy1("a2", "k1"), ErrRevoked},
		{"jwks: revoked key's token claiming the other kid", false, `{"kid":"k1"}`, signedBy1("a3", "k2"), ErrInvalid},
		{"jwks: revoked key's token with an unknown kid", false, `{"kid":"k1"}`, signedBy1("a4", "nope"), ErrInvalid},
		{"jwks: by thumbprint, kid-less", false, `{"kid":"` + tp1 + `"}`, signedBy1("a5", ""), ErrRevoked},
		{"jwks: by thumbprint, with kid", false, `{"kid":"` + tp1 + `"}`, signedBy1("a6", "k1"), ErrRevoked},
		{"jwks: the other key is not revoked", false, `{"kid":"k1"}`, signedBy2("a7", ""), nil},
		{"jwks: the other key with its kid", false, `{"kid":"k1"}`, signedBy2("a8", "k2"), nil},
		{"pem: thumbprint, kid-less", true, `{"kid":"` + tp1 + `"}`, signedBy1("p1", ""), ErrRevoked},
		{"pem: thumbprint, any kid", true, `{"kid":"` + tp1 + `"}`, signedBy1("p2", "innocent"), ErrRevoked},
		{"pem: thumbprint of the second key", true, `{"kid":"` + tp2 + `"}`, signedBy2("p3", ""), ErrRevoked},
		{"pem: the other key is not revoked", true, `{"kid":"` + tp1 + `"}`, signedBy2("p4", ""), nil},
		{"pem: the header kid still matches", true, `{"kid":"rotated-out"}`, signedBy2("p5", "rotated-out"), ErrRevoked},
		{"pem: thumbprint with iss scope", true, `{"kid":"` + tp1 + `","iss":"` + testIssuer + `"}`, signedBy1("p6", "x"), ErrRevoked},
		{"pem: thumbprint with claims", true, `{"kid":"` + tp1 + `","claims":{"aud":"` + testAudience + `"}}`, signedBy1("p7", ""), ErrRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a *Agent
			if tc.pem {
				a = syncedAgent(t, WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey, &k.rsa2.PublicKey))
			} else {
				a = jwksAgent(t, set, WithAlgorithms("RS256"))
			}
			applyRevocation(t, a, tc.rev)
			wantErr(t, a, tc.tok, tc.want, tc.name)
		})
	}
}

// TestKidRevocationStaticKeyInJWKS: a PEM key that the JWKS also publishes
// under a kid is named by that kid too, whichever copy verified the token.
func TestKidRevocationStaticKeyInJWKS(t *testing.T) {
	k := getKeys(t)
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk(t, &k.rsa.PublicKey, "k1", nil)}}
	a := jwksAgent(t, set, WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey))
	applyRevocation(t, a, `{"kid":"k1"}`)
	for _, kid := range []string{"", "unknown-to-the-jwks", "k1"} {
		wantErr(t, a, mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice", "both-"+kid), kid), ErrRevoked, "kid "+kid)
	}
}

// TestKidRevocationSurvivesSpill: a kid revocation pushed out of the exact
// tier still matches the verifying key's names.
func TestKidRevocationSurvivesSpill(t *testing.T) {
	k := getKeys(t)
	tp, err := Thumbprint(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	a := syncedAgent(t, WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey), WithDenylistCapacity(1))
	applyRevocation(t, a, `{"kid":"`+tp+`"}`)
	applyRevocation(t, a, `{"jti":"push-it-out"}`)
	if a.Stats().Denylist.Spilled != 1 {
		t.Fatalf("the kid revocation was not spilled: %+v", a.Stats().Denylist)
	}
	wantErr(t, a, mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice", "spill"), "whatever"), ErrRevoked, "spilled kid revocation")
}

// TestThumbprintRFC7638 checks the thumbprint against the example of RFC
// 7638, section 3.1.
func TestThumbprintRFC7638(t *testing.T) {
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	j, err := jwkset.NewJWKFromMarshal(jwkset.JWKMarshal{KTY: jwkset.KtyRSA, N: n, E: "AQAB"}, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(j.Key())
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("Thumbprint = %s, want %s", got, want)
	}
}

// TestTokenLifetimeLimit: a token that lives longer than L would outlive
// the revocations that assume L (bypass 2).
func TestTokenLifetimeLimit(t *testing.T) {
	now := time.Now()
	lifetime := func(jti string, iat time.Time, exp time.Duration) string {
		c := claims("alice", jti)
		if iat.IsZero() {
			delete(c, "iat")
		} else {
			c["iat"] = iat.Unix()
		}
		c["exp"] = now.Add(exp).Unix()
		return rs256(t, c, "")
	}
	synced := func(l int64) sse.Event {
		data, _ := json.Marshal(events.Synced{Head: "1-0", MaxTokenLifetime: l})
		return sse.Event{Type: events.TypeSynced, Data: data}
	}
	tests := []struct {
		name      string
		announced int64 // L from the broadcaster, seconds; 0: not announced
		opts      []Option
		tok       string
		want      error
	}{
		{"default L, 23h", 0, nil, lifetime("l1", now, 23*time.Hour), nil},
		{"default L, 25h", 0, nil, lifetime("l2", now, 25*time.Hour), ErrInvalid},
		{"announced 1h, 2h token", 3600, nil, lifetime("l3", now, 2*time.Hour), ErrInvalid},
		{"announced 1h, 50m token", 3600, nil, lifetime("l4", now, 50*time.Minute), nil},
		{"announced 1h, issued 30m ago, 40m left", 3600, nil, lifetime("l5", now.Add(-30*time.Minute), 40*time.Minute), ErrInvalid},
		{"no iat, exp in 2h, L 1h", 3600, nil, lifetime("l6", time.Time{}, 2*time.Hour), ErrInvalid},
		{"no iat, exp in 50m, L 1h", 3600, nil, lifetime("l7", time.Time{}, 50*time.Minute), nil},
		{"configuration lowers L", 3600, []Option{WithMaxTokenLifetime(10 * time.Minute)}, lifetime("l8", now, 20*time.Minute), ErrInvalid},
		{"configuration cannot raise L", 3600, []Option{WithMaxTokenLifetime(48 * time.Hour)}, lifetime("l9", now, 2*time.Hour), ErrInvalid},
		{"announced 48h", 48 * 3600, nil, lifetime("l10", now, 30*time.Hour), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t, nil, append(append(rsaOpts(t), WithMaxStaleness(time.Hour)), tc.opts...)...)
			feed(t, a, synced(tc.announced))
			wantErr(t, a, tc.tok, tc.want, tc.name)
			// The verified-token cache must not skip the rule either.
			wantErr(t, a, tc.tok, tc.want, tc.name+" (again)")
		})
	}
}

// TestArrayClaims: claim matchers match an array claim that contains the
// value (bypass 3).
func TestArrayClaims(t *testing.T) {
	a := syncedAgent(t, rsaOpts(t)...)
	applyRevocation(t, a, `{"claims":{"groups":"contractors"}}`)
	c := claims("alice", "arr1")
	c["groups"] = []string{"staff", "contractors"}
	wantErr(t, a, rs256(t, c, ""), ErrRevoked, "groups array containing the value")
	c = claims("alice", "arr2")
	c["groups"] = []string{"staff"}
	wantErr(t, a, rs256(t, c, ""), nil, "groups array without the value")

	b := syncedAgent(t, rsaOpts(t)...)
	applyRevocation(t, b, `{"claims":{"aud":"`+testAudience+`"},"ban":true}`)
	c = claims("bob", "arr3")
	c["aud"] = []string{"billing", testAudience}
	wantErr(t, b, rs256(t, c, ""), ErrRevoked, "aud array containing the value")
}

// TestUnnameableTokens: a token whose jti, sub, iss or kid no revocation can
// carry is refused (bypass 4).
func TestUnnameableTokens(t *testing.T) {
	k := getKeys(t)
	long := strings.Repeat("x", events.MaxValueLength+1)
	edge := strings.Repeat("y", events.MaxValueLength)
	a := syncedAgent(t, WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey))
	for _, field := range []string{"jti", "sub", "iss", "kid"} {
		t.Run(field, func(t *testing.T) {
			c, kid := claims("alice", "name-"+field), ""
			if field == "kid" {
				kid = long
			} else {
				c[field] = long
			}
			wantErr(t, a, rs256(t, c, kid), ErrInvalid, field+" too long to revoke")
			c, kid = claims("alice", "name-ok-"+field), ""
			if field == "kid" {
				kid = edge
			} else {
				c[field] = edge
			}
			wantErr(t, a, rs256(t, c, kid), nil, field+" at the limit")
		})
	}
	t.Run("kid not a string", func(t *testing.T) {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("alice", "kid-num"))
		tok.Header["kid"] = 7
		s, err := tok.SignedString(k.rsa)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, a, s, ErrInvalid, "numeric kid")
	})
}

// handMade signs header and payload, given as raw JSON, with HS256.
func handMade(secret []byte, header, payload string) string {
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

// TestAmbiguousTokens: headers and payloads that another parser could read
// differently, and extensions we do not understand, are refused (bypass 5).
func TestAmbiguousTokens(t *testing.T) {
	k := getKeys(t)
	a := syncedAgent(t, hsOpts(t)...)
	now := time.Now()
	body := func(extra string) string {
		return `{"iss":"` + testIssuer + `","aud":"` + testAudience + `","iat":` + itoa(now.Unix()) +
			`,"exp":` + itoa(now.Add(time.Hour).Unix()) + extra + `}`
	}
	tests := []struct {
		name            string
		header, payload string
		want            error
	}{
		{"plain", `{"alg":"HS256","typ":"JWT"}`, body(`,"sub":"alice"`), nil},
		{"repeated sub", `{"alg":"HS256","typ":"JWT"}`, body(`,"sub":"mallory","sub":"alice"`), ErrInvalid},
		{"repeated jti", `{"alg":"HS256"}`, body(`,"jti":"a","jti":"b"`), ErrInvalid},
		{"repeated nested member", `{"alg":"HS256"}`, body(`,"sub":"a","ctx":{"t":1,"t":2}`), ErrInvalid},
		{"repeated member in an array's object", `{"alg":"HS256"}`, body(`,"sub":"a","l":[{"t":1,"t":2}]`), ErrInvalid},
		{"repeated header member", `{"alg":"HS256","kid":"a","kid":"b"}`, body(`,"sub":"a"`), ErrInvalid},
		{"repeated alg", `{"alg":"HS256","alg":"HS256"}`, body(`,"sub":"a"`), ErrInvalid},
		{"escaped duplicate", `{"alg":"HS256"}`, body(`,"sub":"a","s\u0075b":"b"`), ErrInvalid},
		{"same name in two objects is fine", `{"alg":"HS256"}`, body(`,"sub":"a","x":{"sub":"b"}`), nil},
		{"crit", `{"alg":"HS256","crit":["exp"],"exp":1}`, body(`,"sub":"a"`), ErrInvalid},
		{"empty crit", `{"alg":"HS256","crit":[]}`, body(`,"sub":"a"`), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, a, handMade(k.hmac, tc.header, tc.payload), tc.want, tc.name)
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestJWKSKeyRules: JWKS keys meet the rules of PEM keys (bypass 6).
func TestJWKSKeyRules(t *testing.T) {
	k := getKeys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{
		jwk(t, &weak.PublicKey, "weak", nil),
		jwk(t, &k.rsa.PublicKey, "enc", func(m *jwkset.JWKMarshal) { m.USE = jwkset.UseEnc }),
		jwk(t, &k.rsa2.PublicKey, "ps", func(m *jwkset.JWKMarshal) { m.ALG = jwkset.AlgPS256 }),
		jwk(t, &k.ec.PublicKey, "ec", nil),
	}}
	a := jwksAgent(t, set, WithAlgorithms("RS256", "PS256", "ES256"))
	c := func(jti string) jwt.MapClaims { return claims("alice", jti) }
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"RSA key under 2048 bits, with kid", mint(t, jwt.SigningMethodRS256, weak, c("w1"), "weak"), ErrInvalid},
		{"RSA key under 2048 bits, kid-less", mint(t, jwt.SigningMethodRS256, weak, c("w2"), ""), ErrInvalid},
		{"use enc, with kid", mint(t, jwt.SigningMethodRS256, k.rsa, c("u1"), "enc"), ErrInvalid},
		{"use enc, kid-less", mint(t, jwt.SigningMethodRS256, k.rsa, c("u2"), ""), ErrInvalid},
		{"alg PS256 key used for RS256, with kid", mint(t, jwt.SigningMethodRS256, k.rsa2, c("a1"), "ps"), ErrInvalid},
		{"alg PS256 key used for RS256, kid-less", mint(t, jwt.SigningMethodRS256, k.rsa2, c("a2"), ""), ErrInvalid},
		{"alg PS256 key used for PS256", mint(t, jwt.SigningMethodPS256, k.rsa2, c("a3"), "ps"), nil},
		{"alg PS256 key used for PS256, kid-less", mint(t, jwt.SigningMethodPS256, k.rsa2, c("a4"), ""), nil},
		{"EC key", mint(t, jwt.SigningMethodES256, k.ec, c("e1"), "ec"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, a, tc.tok, tc.want, tc.name) })
	}
}

// TestPlainHTTPWarnings: a JWKS or broadcaster URL over plain HTTP outside
// loopback is logged as an error: whoever is on that path can inject keys
// or hide revocations.
func TestPlainHTTPWarnings(t *testing.T) {
	tests := []struct {
		name, broadcaster, jwks string
		warn                    bool
	}{
		{"loopback", "http://127.0.0.1:8080", "http://localhost:9/jwks", false},
		{"https", "https://b.example", "https://idp.example/jwks", false},
		{"plain broadcaster", "http://b.example:8080", "", true},
		{"plain jwks", "https://b.example", "http://idp.example/jwks", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			opts := []Option{WithLogger(slog.New(slog.NewTextHandler(&buf, nil)))}
			if tc.jwks != "" {
				opts = append(opts, WithAlgorithms("RS256"), WithJWKS(tc.jwks))
			} else {
				opts = append(opts, rsaOpts(t)...)
			}
			if _, err := New([]string{tc.broadcaster}, opts...); err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(buf.String(), "level=ERROR") && strings.Contains(buf.String(), "plain HTTP")
			if got != tc.warn {
				t.Fatalf("warned = %v, want %v; log:\n%s", got, tc.warn, buf.String())
			}
		})
	}
}

// TestLeewayMustStayBelowGrace: an agent whose leeway the broadcaster's
// expiry grace does not cover would admit tokens whose revocations an
// agent started later never receives: it refuses to run.
func TestLeewayMustStayBelowGrace(t *testing.T) {
	tests := []struct {
		name   string
		leeway time.Duration
		grace  int64
		want   error
	}{
		{"grace covers the leeway", 30 * time.Second, 120, nil},
		{"grace equals the leeway", 2 * time.Minute, 120, ErrLeewayExceedsGrace},
		{"grace below the leeway", 30 * time.Second, 10, ErrLeewayExceedsGrace},
		{"no grace announced", 5 * time.Minute, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t, nil, append(rsaOpts(t), WithLeeway(tc.leeway))...)
			data, _ := json.Marshal(events.Synced{Head: "1-0", ExpiryGrace: tc.grace})
			err := a.handle(sse.Event{Type: events.TypeSynced, Data: data})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("synced: %v, want %v", err, tc.want)
			}
			if a.Ready() != (tc.want == nil) {
				t.Fatalf("ready = %v", a.Ready())
			}
		})
	}
}

// TestKidRevocationMatchesEveryNameOfTheKey: a key the agent also trusts
// as a PEM key, or that the JWKS publishes under several kids, is retired
// by a revocation of any of its kids, whichever copy verified the token
// (found by TestPropertyAgentMatchesContract).
func TestKidRevocationMatchesEveryNameOfTheKey(t *testing.T) {
	k := getKeys(t)
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{
		jwk(t, &k.rsa.PublicKey, "k1", nil),
		jwk(t, &k.rsa.PublicKey, "k1-again", nil),
	}}
	signedBy1 := func(jti, kid string) string {
		return mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice", jti), kid)
	}
	tests := []struct {
		name     string
		capacity int
		rev      string
		tok      string
	}{
		{"PEM copy, kid-less", 0, `{"kid":"k1"}`, signedBy1("m1", "")},
		{"PEM copy, unknown kid", 0, `{"kid":"k1"}`, signedBy1("m2", "nope")},
		{"other kid of the key", 0, `{"kid":"k1"}`, signedBy1("m3", "k1-again")},
		{"other kid of the key, reversed", 0, `{"kid":"k1-again"}`, signedBy1("m4", "k1")},
		{"spilled", 1, `{"kid":"k1-again"}`, signedBy1("m5", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Option{WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey)}
			if tc.capacity > 0 {
				opts = append(opts, WithDenylistCapacity(tc.capacity))
			}
			a := jwksAgent(t, set, opts...)
			applyRevocation(t, a, tc.rev)
			if tc.capacity > 0 {
				applyRevocation(t, a, `{"jti":"push-it-out"}`)
				if a.Stats().Denylist.Spilled != 1 {
					t.Fatalf("not spilled: %+v", a.Stats().Denylist)
				}
			}
			wantErr(t, a, tc.tok, ErrRevoked, tc.name)
		})
	}
}
