package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

var (
	testNow    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	testSecret = []byte(strings.Repeat("s", MinHMACSecretLength))
)

type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, keys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

func claimsFor(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "iss": "https://idp", "aud": "api", "jti": "j-" + sub,
		"iat": testNow.Add(-time.Minute).Unix(), "exp": testNow.Add(time.Hour).Unix()}
}

func mint(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawHS256 signs header and payload JSON as written, so that tests can
// send what golang-jwt would never produce.
func rawHS256(t testing.TB, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(header)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc(sig)
}

func newTestVerifier(t testing.TB, opts ...Option) *Verifier {
	t.Helper()
	v, err := New(append([]Option{WithClock(func() time.Time { return testNow })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	k := getKeys(t)
	rsaTP, _ := Thumbprint(&k.rsa.PublicKey)
	rsa2TP, _ := Thumbprint(&k.rsa2.PublicKey)
	static := []Option{
		WithAlgorithms("RS256", "ES256", "EdDSA", "HS256"),
		WithPublicKeys(&k.rsa.PublicKey, &k.rsa2.PublicKey, &k.ec.PublicKey, k.ed.Public()),
		WithHMACSecret(testSecret),
		WithIssuers("https://idp"), WithAudiences("api"),
	}
	v := newTestVerifier(t, static...)
	long := strings.Repeat("x", 1025)
	noIAT := claimsFor("n")
	delete(noIAT, "iat")
	for _, tc := range []struct {
		name    string
		v       *Verifier
		token   string
		wantErr error  // nil: verifies
		wantKey string // thumbprint of the key that verified it
	}{
		{"RS256, first key", v, mint(t, jwt.SigningMethodRS256, k.rsa, claimsFor("a"), nil), nil, rsaTP},
		{"RS256 kid-less, second key", v, mint(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("a"), nil), nil, rsa2TP},
		{"RS256, header kid does not pick the key", v, mint(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("a"), map[string]any{"kid": "k1"}), nil, rsa2TP},
		{"ES256", v, mint(t, jwt.SigningMethodES256, k.ec, claimsFor("a"), nil), nil, ""},
		{"EdDSA", v, mint(t, jwt.SigningMethodEdDSA, k.ed, claimsFor("a"), nil), nil, ""},
		{"HS256", v, mint(t, jwt.SigningMethodHS256, testSecret, claimsFor("a"), nil), nil, ""},
		{"algorithm not allowed", v, mint(t, jwt.SigningMethodRS384, k.rsa, claimsFor("a"), nil), jwt.ErrTokenSignatureInvalid, ""},
		{"none", v, mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("a"), nil), jwt.ErrTokenSignatureInvalid, ""},
		{"unknown key", v, func() string {
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			return mint(t, jwt.SigningMethodRS256, other, claimsFor("a"), nil)
		}(), errNoKeyVerified, ""},
		{"wrong issuer", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "evil", "exp": testNow.Add(time.Hour).Unix(), "aud": "api"}, nil), jwt.ErrTokenInvalidIssuer, ""},
		{"wrong audience", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "https://idp", "exp": testNow.Add(time.Hour).Unix(), "aud": "other"}, nil), jwt.ErrTokenInvalidAudience, ""},
		{"no exp", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "https://idp", "aud": "api"}, nil), jwt.ErrTokenRequiredClaimMissing, ""},
		{"expired", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "https://idp", "aud": "api", "exp": testNow.Add(-time.Minute).Unix()}, nil), jwt.ErrTokenExpired, ""},
		{"within leeway", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "https://idp", "aud": "api", "exp": testNow.Add(-10 * time.Second).Unix()}, nil), nil, ""},
		{"no iat, not required", v, mint(t, jwt.SigningMethodHS256, testSecret, noIAT, nil), nil, ""},
		{"no iat, required", newTestVerifier(t, append(static, WithRequireIssuedAt(true))...), mint(t, jwt.SigningMethodHS256, testSecret, noIAT, nil), jwt.ErrTokenRequiredClaimMissing, ""},
		{"crit", v, mint(t, jwt.SigningMethodHS256, testSecret, claimsFor("a"), map[string]any{"crit": []string{"exp"}}), ErrCrit, ""},
		{"kid not a string", v, mint(t, jwt.SigningMethodHS256, testSecret, claimsFor("a"), map[string]any{"kid": 7}), errKidType, ""},
		{"kid too long", v, mint(t, jwt.SigningMethodHS256, testSecret, claimsFor("a"), map[string]any{"kid": long}), ErrUnnameable, ""},
		{"jti too long", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "https://idp", "aud": "api", "exp": testNow.Add(time.Hour).Unix(), "jti": long}, nil), ErrUnnameable, ""},
		{"jti not a string", v, mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"iss": "https://idp", "aud": "api", "exp": testNow.Add(time.Hour).Unix(), "jti": 1}, nil), jwt.ErrInvalidType, ""},
		{"payload repeats sub", v, rawHS256(t, `{"alg":"HS256","typ":"JWT"}`, `{"sub":"a","sub":"b","iss":"https://idp","aud":"api","exp":1900000000}`), ErrRepeatedMember, ""},
		{"nested repeat", v, rawHS256(t, `{"alg":"HS256"}`, `{"sub":"a","x":{"y":1,"y":2},"iss":"https://idp","aud":"api","exp":1900000000}`), ErrRepeatedMember, ""},
		{"header repeats alg", v, rawHS256(t, `{"alg":"HS256","alg":"none"}`, `{"sub":"a","iss":"https://idp","aud":"api","exp":1900000000}`), ErrRepeatedMember, ""},
		{"same name in two objects", v, rawHS256(t, `{"alg":"HS256"}`, `{"sub":"a","x":{"sub":"b"},"iss":"https://idp","aud":"api","exp":1900000000}`), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.v.Verify(tc.token)
			if tc.wantErr != nil {
				if !errors.Is(err, ErrInvalid) || !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %v, want ErrInvalid and %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.SigningKeyThumbprint == "" || (tc.wantKey != "" && c.SigningKeyThumbprint != tc.wantKey) {
				t.Fatalf("verified by %q, want %q", c.SigningKeyThumbprint, tc.wantKey)
			}
			if f := c.Facts(); f.KeyThumbprint != c.SigningKeyThumbprint || f.Sub != c.Subject || f.JTI != c.ID {
				t.Fatalf("facts %+v disagree with claims %+v", f, c)
			}
		})
	}
}

// jwksServer serves a key set that tests can change.
func jwksServer(t *testing.T, keys ...jwkset.JWKMarshal) (*httptest.Server, func(...jwkset.JWKMarshal)) {
	t.Helper()
	var mu sync.Mutex
	set := keys
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: set})
	}))
	t.Cleanup(srv.Close)
	return srv, func(k ...jwkset.JWKMarshal) { mu.Lock(); set = k; mu.Unlock() }
}

func jwkOf(t *testing.T, key any, kid, alg string) jwkset.JWKMarshal {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg), USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	return j.Marshal()
}

func TestVerifyJWKS(t *testing.T) {
	k := getKeys(t)
	srv, _ := jwksServer(t, jwkOf(t, &k.rsa.PublicKey, "k1", "RS256"), jwkOf(t, &k.rsa2.PublicKey, "k2", ""))
	var changes int
	var mu sync.Mutex
	v := newTestVerifier(t, WithAlgorithms("RS256", "ES256"), WithJWKS(srv.URL), WithKeySetHook(func() { mu.Lock(); changes++; mu.Unlock() }))
	if v.KeySetLoaded() || !v.HasJWKS() {
		t.Fatal("loaded before any fetch")
	}
	if _, err := v.Verify(mint(t, jwt.SigningMethodRS256, k.rsa, claimsFor("a"), map[string]any{"kid": "k1"})); !errors.Is(err, ErrJWKSNotLoaded) {
		t.Fatalf("before the fetch: %v", err)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if changes != 1 || !v.KeySetLoaded() {
		t.Fatalf("after the fetch: %d changes, loaded %v", changes, v.KeySetLoaded())
	}
	mu.Unlock()
	for _, tc := range []struct {
		name    string
		token   string
		wantErr error
		wantKid string
	}{
		{"kid k1", mint(t, jwt.SigningMethodRS256, k.rsa, claimsFor("a"), map[string]any{"kid": "k1"}), nil, "k1"},
		{"kid-less, second key", mint(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("a"), nil), nil, "k2"},
		{"kid k1 signed by k2's key", mint(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("a"), map[string]any{"kid": "k1"}), jwt.ErrTokenSignatureInvalid, ""},
		{"unknown kid", mint(t, jwt.SigningMethodRS256, k.rsa, claimsFor("a"), map[string]any{"kid": "k9"}), ErrUnknownKID, ""},
		{"JWK alg limits the key", mint(t, jwt.SigningMethodPS256, k.rsa, claimsFor("a"), map[string]any{"kid": "k1"}), jwt.ErrTokenSignatureInvalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.SigningKeyID != tc.wantKid {
				t.Fatalf("Verify = %+v, %v; want kid %s", c, err, tc.wantKid)
			}
		})
	}
}

func TestNewRefusesConfigurations(t *testing.T) {
	k := getKeys(t)
	pub := WithPublicKeys(&k.rsa.PublicKey)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []Option
		want error // besides ErrInvalidOption
	}{
		{"no algorithms", []Option{pub}, ErrNoAlgorithms},
		{"no key source", []Option{WithAlgorithms("RS256")}, ErrNoKeySource},
		{"none", []Option{pub, WithAlgorithms("RS256", "none")}, ErrAlgorithmNone},
		{"NONE", []Option{pub, WithAlgorithms("NONE")}, ErrAlgorithmNone},
		{"unknown algorithm", []Option{pub, WithAlgorithms("RS1")}, nil},
		{"HS256 without a secret", []Option{pub, WithAlgorithms("HS256")}, nil},
		{"algorithm without its key", []Option{pub, WithAlgorithms("ES256")}, nil},
		{"short HMAC secret", []Option{WithAlgorithms("HS256"), WithHMACSecret([]byte("short"))}, nil},
		{"weak RSA key", []Option{WithAlgorithms("RS256"), WithPublicKeys(&weak.PublicKey)}, nil},
		{"private key", []Option{WithAlgorithms("RS256"), WithPublicKeys(k.rsa)}, nil},
		{"bad PEM", []Option{WithAlgorithms("RS256"), WithPublicKeyPEM([]byte("nothing"))}, nil},
		{"missing PEM file", []Option{WithAlgorithms("RS256"), WithPublicKeyFile("/nonexistent.pem")}, nil},
		{"relative JWKS URL", []Option{WithAlgorithms("RS256"), WithJWKS("/keys")}, nil},
		{"negative leeway", []Option{pub, WithAlgorithms("RS256"), WithLeeway(-time.Second)}, nil},
		{"nil clock", []Option{pub, WithAlgorithms("RS256"), WithClock(nil)}, nil},
		{"nil logger", []Option{pub, WithAlgorithms("RS256"), WithLogger(nil)}, nil},
		{"nil HTTP client", []Option{pub, WithAlgorithms("RS256"), WithHTTPClient(nil)}, nil},
		{"zero JWKS refresh", []Option{WithAlgorithms("RS256"), WithJWKS("https://idp/keys"), WithJWKSRefresh(0, time.Second)}, nil},
		{"negative JWKS minimum", []Option{WithAlgorithms("RS256"), WithJWKS("https://idp/keys"), WithJWKSRefresh(time.Hour, -1)}, nil},
		{"JWKS minimum above interval", []Option{WithAlgorithms("RS256"), WithJWKS("https://idp/keys"), WithJWKSRefresh(time.Second, time.Hour)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.opts...)
			if v != nil || !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("New = %v, %v; want ErrInvalidOption", v, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("New = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Option
		ok   bool
	}{
		{"zero leeway", WithLeeway(0), true},
		{"negative leeway", WithLeeway(-1), false},
		{"JWKS refresh", WithJWKSRefresh(time.Hour, time.Minute), true},
		{"equal JWKS refresh", WithJWKSRefresh(time.Minute, time.Minute), true},
		{"no JWKS refresh", WithJWKSRefresh(0, 0), false},
		{"HMAC secret", WithHMACSecret(testSecret), true},
		{"empty HMAC secret", WithHMACSecret(nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Validate checks the option alone: no key source is needed.
			err := Validate(tc.opt)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidOption)) {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
