package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/jwtverify"
	"github.com/revocast/revocast/pkg/sse"
)

// TestAttacks: every forged or unacceptable token is refused with ErrInvalid
// and, through the middleware, 401 invalid_token.
func TestAttacks(t *testing.T) {
	k := getKeys(t)
	a := syncedAgent(t, rsaOpts(t)...)
	// An agent that also accepts HS256 with its own secret: a token signed
	// with the RSA public key as HMAC secret must still fail.
	both := syncedAgent(t, WithAlgorithms("RS256", "HS256"), WithPublicKeys(&k.rsa.PublicKey),
		WithHMACSecret(k.hmac), WithIssuers(testIssuer), WithAudiences(testAudience))

	good := rs256(t, claims("alice", "atk-good"), "")
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("alice", "atk-none")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pemBytes(t, &k.rsa.PublicKey)
	confused := mint(t, jwt.SigningMethodHS256, pubPEM, claims("alice", "atk-confused"), "")
	confusedDER := mint(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), claims("alice", "atk-confused2"), "")
	wrongIss := claims("alice", "atk-iss")
	wrongIss["iss"] = "https://evil.example"
	wrongAud := claims("alice", "atk-aud")
	wrongAud["aud"] = "another-api"
	expired := claims("alice", "atk-exp")
	expired["iat"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	noExp := claims("alice", "atk-noexp")
	delete(noExp, "exp")
	futureIat := claims("alice", "atk-iat")
	futureIat["iat"] = time.Now().Add(time.Hour).Unix()
	// Tampered: the payload of one token with the signature of another.
	victim := strings.Split(rs256(t, claims("alice", "atk-a"), ""), ".")
	forged := strings.Split(rs256(t, claims("mallory", "atk-b"), ""), ".")
	tampered := victim[0] + "." + forged[1] + "." + victim[2]
	// Payload changed by hand, signature kept.
	payload, _ := json.Marshal(claims("root", "atk-c"))
	handEdited := victim[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + victim[2]
	untrusted := mint(t, jwt.SigningMethodRS256, k.rsa2, claims("alice", "atk-key"), "")
	es := mint(t, jwt.SigningMethodES256, k.ec, claims("alice", "atk-es"), "")
	ps := mint(t, jwt.SigningMethodPS256, k.rsa, claims("alice", "atk-ps"), "")

	cases := []struct {
		name string
		ag   *Agent
		tok  string
	}{
		{"alg none", a, noneTok},
		{"alg none (agent with HS256)", both, noneTok},
		{"HS256 with the RSA public key PEM as secret", a, confused},
		{"HS256 with the RSA public key PEM as secret (agent with HS256)", both, confused},
		{"HS256 with the RSA public key DER as secret (agent with HS256)", both, confusedDER},
		{"wrong iss", a, rs256(t, wrongIss, "")},
		{"wrong aud", a, rs256(t, wrongAud, "")},
		{"expired", a, rs256(t, expired, "")},
		{"no exp", a, rs256(t, noExp, "")},
		{"iat in the future", a, rs256(t, futureIat, "")},
		{"tampered payload", a, tampered},
		{"hand-edited payload", a, handEdited},
		{"untrusted key", a, untrusted},
		{"algorithm not allowed (ES256)", a, es},
		{"algorithm not allowed (PS256)", a, ps},
		{"garbage", a, "not.a.jwt"},
		{"too long", a, strings.Repeat("a", MaxTokenLength+1)},
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler reached") })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.ag.Check(context.Background(), tc.tok)
			if !errors.Is(err, ErrInvalid) || c != nil {
				t.Fatalf("Check = %v, %v; want ErrInvalid", c, err)
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason == nil {
				t.Fatalf("error %v is not an *InvalidError with a reason", err)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", "Bearer "+tc.tok)
			tc.ag.Middleware(ok, WithRealm("api")).ServeHTTP(rec, req)
			h := rec.Header().Get("WWW-Authenticate")
			if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(h, `Bearer realm="api", error="invalid_token", error_description="`) {
				t.Fatalf("middleware: %d, WWW-Authenticate %q", rec.Code, h)
			}
		})
	}
	if _, err := a.Check(context.Background(), good); err != nil {
		t.Fatalf("the genuine token: %v", err)
	}
	if n := a.Stats().Checks["invalid"]; n < 10 {
		t.Fatalf("invalid checks counted: %d", n)
	}
}

func TestSpecificReasons(t *testing.T) {
	a := syncedAgent(t, rsaOpts(t)...)
	expired := claims("alice", "r-exp")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	wrongIss := claims("alice", "r-iss")
	wrongIss["iss"] = "https://evil.example"
	for tok, want := range map[string]error{
		rs256(t, expired, ""):  jwt.ErrTokenExpired,
		rs256(t, wrongIss, ""): jwt.ErrTokenInvalidIssuer,
	} {
		if err := checkErr(a, tok); !errors.Is(err, want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Check = %v, want %v", err, want)
		}
	}
}

// TestAlgorithmsAndKeys: every supported family verifies with its key, and
// the configuration errors of New.
func TestAlgorithmsAndKeys(t *testing.T) {
	k := getKeys(t)
	for _, tc := range []struct {
		alg    string
		method jwt.SigningMethod
		priv   any
		opt    Option
	}{
		{"HS256", jwt.SigningMethodHS256, k.hmac, WithHMACSecret(k.hmac)},
		{"HS512", jwt.SigningMethodHS512, k.hmac, WithHMACSecret(k.hmac)},
		{"RS256", jwt.SigningMethodRS256, k.rsa, WithPublicKeyPEM(pemBytes(t, &k.rsa.PublicKey))},
		{"PS384", jwt.SigningMethodPS384, k.rsa, WithPublicKeyFile(pemFile(t, &k.rsa.PublicKey))},
		{"ES256", jwt.SigningMethodES256, k.ec, WithPublicKeyPEM(pemBytes(t, &k.ec.PublicKey))},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, WithPublicKeyPEM(pemBytes(t, k.ed.Public()))},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			a := syncedAgent(t, WithAlgorithms(tc.alg), tc.opt)
			tok := mint(t, tc.method, tc.priv, claims("alice", "alg-"+tc.alg), "")
			c, err := a.Check(context.Background(), tok)
			if err != nil || c.Algorithm != tc.alg {
				t.Fatalf("Check = %+v, %v", c, err)
			}
		})
	}

	t.Run("two RSA keys", func(t *testing.T) {
		a := syncedAgent(t, WithAlgorithms("RS256"), WithPublicKeys(&k.rsa.PublicKey, &k.rsa2.PublicKey))
		for _, priv := range []any{k.rsa, k.rsa2} {
			if err := checkErr(a, mint(t, jwt.SigningMethodRS256, priv, claims("a", "two"), "")); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("certificate", func(t *testing.T) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec.PublicKey, k.ec)
		if err != nil {
			t.Fatal(err)
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		a := syncedAgent(t, WithAlgorithms("ES256"), WithPublicKeyPEM(certPEM))
		if err := checkErr(a, mint(t, jwt.SigningMethodES256, k.ec, claims("a", "cert"), "")); err != nil {
			t.Fatal(err)
		}
	})

	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ec)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	rsaPEM := WithPublicKeyPEM(pemBytes(t, &k.rsa.PublicKey))
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"no algorithms", []Option{rsaPEM}, "WithAlgorithms is required"},
		{"none", []Option{WithAlgorithms("none"), rsaPEM}, `"none" is never accepted`},
		{"unknown", []Option{WithAlgorithms("RS1"), rsaPEM}, `unknown algorithm "RS1"`},
		{"HS256 without secret", []Option{WithAlgorithms("RS256", "HS256"), rsaPEM}, "HS256 needs an HMAC secret"},
		{"no key of the kind", []Option{WithAlgorithms("ES256"), rsaPEM}, "ES256: no key of its kind"},
		{"no key source", []Option{WithAlgorithms("RS256")}, "no key source"},
		{"short secret", []Option{WithAlgorithms("HS256"), WithHMACSecret([]byte("short"))}, "at least 32 are required"},
		{"private key", []Option{WithAlgorithms("ES256"), WithPublicKeyPEM(privPEM)}, "never a private key"},
		{"not PEM", []Option{WithAlgorithms("RS256"), WithPublicKeyPEM([]byte("hello"))}, "no PEM-encoded public key"},
		{"missing file", []Option{WithAlgorithms("RS256"), WithPublicKeyFile("/nonexistent/key.pem")}, "public key file"},
		{"bad JWKS URL", []Option{WithAlgorithms("RS256"), WithJWKS("ftp://x")}, "JWKS URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]string{"http://127.0.0.1:1"}, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(nil, WithAlgorithms("RS256"), rsaPEM); err == nil {
		t.Fatal("New without URLs succeeded")
	}
	if _, err := New([]string{"127.0.0.1:8080"}, WithAlgorithms("RS256"), rsaPEM); err == nil {
		t.Fatal("New with a URL without scheme succeeded")
	}
}

func TestAlgorithmsFor(t *testing.T) {
	k := getKeys(t)
	got := AlgorithmsFor([]crypto.PublicKey{&k.ec.PublicKey, k.ed.Public(), &k.rsa.PublicKey}, false, false)
	want := "RS256,RS384,RS512,PS256,PS384,PS512,ES256,EdDSA"
	if strings.Join(got, ",") != want {
		t.Fatalf("AlgorithmsFor = %v, want %s", got, want)
	}
	if got := AlgorithmsFor(nil, true, false); strings.Join(got, ",") != "HS256,HS384,HS512" {
		t.Fatalf("hmac: %v", got)
	}
	if got := AlgorithmsFor(nil, false, true); len(got) != 10 || got[0] != "RS256" {
		t.Fatalf("jwks: %v", got)
	}
}

func TestStreamURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://b:8080":                 "http://b:8080/v1/events",
		"http://b:8080/":                "http://b:8080/v1/events",
		"https://b/prefix":              "https://b/prefix/v1/events",
		"http://b:8080/v1/events":       "http://b:8080/v1/events",
		"http://b:8080/?last_event_id=": "http://b:8080/v1/events?last_event_id=",
	} {
		got, err := streamURL(in)
		if err != nil || got != want {
			t.Errorf("streamURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestRebuildNeverAdmits drives the event handler directly: after a reset,
// what the old state revoked stays denied until the next synced, what the
// new state revokes is denied at once, and after synced exactly the new
// state applies.
func TestRebuildNeverAdmits(t *testing.T) {
	a := syncedAgent(t, hsOpts(t)...)
	tokOld := hs256(t, claims("u", "only-old"))
	tokBoth := hs256(t, claims("u", "both"))
	tokNew := hs256(t, claims("u", "only-new"))
	tokLifted := hs256(t, claims("u", "lifted"))
	feed(t, a, revokeEvent(t, `{"jti":"only-old"}`), revokeEvent(t, `{"jti":"both"}`), revokeEvent(t, `{"jti":"lifted"}`))
	for _, tok := range []string{tokOld, tokBoth, tokLifted} {
		wantErr(t, a, tok, ErrRevoked, "before the reset")
	}
	wantErr(t, a, tokNew, nil, "before the reset")

	feed(t, a, sse.Event{Type: events.TypeReset, Data: []byte("{}")})
	if !a.Stats().Rebuilding {
		t.Fatal("not rebuilding after a reset")
	}
	for _, tok := range []string{tokOld, tokBoth, tokLifted} {
		wantErr(t, a, tok, ErrRevoked, "right after the reset")
	}
	feed(t, a, revokeEvent(t, `{"jti":"both"}`))
	// The connection drops and the resume is refused again: a second reset.
	feed(t, a, sse.Event{Type: events.TypeReset, Data: []byte("{}")})
	feed(t, a, revokeEvent(t, `{"jti":"both"}`), revokeEvent(t, `{"jti":"only-new"}`))
	for _, tok := range []string{tokOld, tokBoth, tokLifted, tokNew} {
		wantErr(t, a, tok, ErrRevoked, "during the rebuild")
	}
	lifted := events.Revocation{JTI: "lifted"}
	data, _ := json.Marshal(events.Lift{Key: lifted.ComputeKey()})
	feed(t, a, sse.Event{Type: events.TypeLift, Data: data})
	wantErr(t, a, tokLifted, nil, "lifted during the rebuild")

	feed(t, a, sse.Event{Type: events.TypeSynced, Data: []byte(`{"head":"2-9"}`)})
	st := a.Stats()
	if st.Rebuilding || st.Resets != 2 || st.Denylist.Exact != 2 {
		t.Fatalf("after synced: %+v", st)
	}
	wantErr(t, a, tokOld, nil, "revoked only in the old state, after synced")
	wantErr(t, a, tokBoth, ErrRevoked, "in both states")
	wantErr(t, a, tokNew, ErrRevoked, "in the new state")
}

func TestBadEventsAreSkipped(t *testing.T) {
	a := syncedAgent(t, hsOpts(t)...)
	feed(t, a,
		sse.Event{Type: events.TypeRevoke, Data: []byte("{not json")},
		sse.Event{Type: events.TypeLift, Data: []byte(`{}`)},
		sse.Event{Type: "message", Data: []byte("hello")})
	if st := a.Stats(); st.BadEvents != 2 || st.Revokes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStaleBeforeSync: before the first synced the closed agent refuses with
// ErrStale, the open one allows.
func TestStaleBeforeSync(t *testing.T) {
	tok := hs256(t, claims("u", "early"))
	closed := newAgent(t, nil, hsOpts(t)...)
	open := newAgent(t, nil, append(hsOpts(t), WithStalePolicy(StaleOpen))...)
	wantErr(t, closed, tok, ErrStale, "closed, before sync")
	wantErr(t, open, tok, nil, "open, before sync")
	if closed.Ready() || closed.Fresh() {
		t.Fatal("ready before sync")
	}
	select {
	case <-closed.ReadyChan():
		t.Fatal("ReadyChan closed before sync")
	default:
	}
	// A revoked token is refused as revoked even when stale and open.
	feed(t, open, revokeEvent(t, `{"jti":"early"}`))
	wantErr(t, open, tok, ErrRevoked, "open, revoked, before sync")
}

// TestStaleClock drives staleness with an injected clock.
func TestStaleClock(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a := newAgent(t, nil, append(hsOpts(t), WithClock(clock), WithMaxStaleness(10*time.Second))...)
	tok := hs256(t, claims("u", "clock"))
	feed(t, a, sse.Event{Type: events.TypeSynced, Data: []byte(`{"head":"1-0"}`)})
	wantErr(t, a, tok, nil, "fresh")
	now.Add(int64(9 * time.Second))
	wantErr(t, a, tok, nil, "9s of silence")
	now.Add(int64(2 * time.Second))
	wantErr(t, a, tok, ErrStale, "11s of silence")
	if !a.Stats().Stale || a.Fresh() {
		t.Fatal("Stats/Fresh disagree with Check")
	}
	a.onActivity(time.Now()) // a heartbeat
	wantErr(t, a, tok, nil, "after a heartbeat")
}

// TestZeroAllocRepeat: a repeated token is checked without allocating.
func TestZeroAllocRepeat(t *testing.T) {
	a := syncedAgent(t, rsaOpts(t)...)
	feed(t, a, revokeEvent(t, `{"sub":"someone-else"}`), revokeEvent(t, `{"jti":"other"}`))
	tok := rs256(t, claims("alice", "zero"), "kid-1")
	ctx := context.Background()
	if _, err := a.Check(ctx, tok); err != nil {
		t.Fatal(err)
	}
	var failed error
	n := testing.AllocsPerRun(200, func() {
		if _, err := a.Check(ctx, tok); err != nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if n != 0 {
		t.Fatalf("Check of a repeated token allocates %v times", n)
	}
	revoked := rs256(t, claims("alice", "other"), "")
	_ = checkErr(a, revoked)
	if n := testing.AllocsPerRun(200, func() { _, _ = a.Check(ctx, revoked) }); n != 0 {
		t.Fatalf("Check of a repeated revoked token allocates %v times", n)
	}
}

func TestVerifiedCacheDisabled(t *testing.T) {
	a := syncedAgent(t, append(rsaOpts(t), WithVerifiedCacheCapacity(0))...)
	tok := rs256(t, claims("alice", "nocache"), "")
	for range 2 {
		if err := checkErr(a, tok); err != nil {
			t.Fatal(err)
		}
	}
	if a.Stats().CachedTokens != 0 {
		t.Fatal("cache used while disabled")
	}
}

func TestMiddleware(t *testing.T) {
	a := syncedAgent(t, rsaOpts(t)...)
	var got *Claims
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = ClaimsFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}), WithRealm("orders"))
	serve := func(auth string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/x", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		return rec
	}
	tok := rs256(t, claims("alice", "mw-1"), "")
	if rec := serve("bearer " + tok); rec.Code != http.StatusNoContent || got == nil || got.Subject != "alice" {
		t.Fatalf("valid token: %d, claims %+v", rec.Code, got)
	}
	for _, auth := range []string{"", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"} {
		rec := serve(auth)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Bearer realm="orders"` {
			t.Fatalf("%q: %d %q", auth, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	feed(t, a, revokeEvent(t, `{"jti":"mw-1"}`))
	rec := serve("Bearer " + tok)
	want := `Bearer realm="orders", error="invalid_token", error_description="the token has been revoked"`
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != want {
		t.Fatalf("revoked: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "invalid_token" {
		t.Fatalf("body %s", rec.Body)
	}

	stale := newAgent(t, nil, rsaOpts(t)...)
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	stale.Middleware(h).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("stale: %d", rec.Code)
	}
}

// jwksServer serves a JWKS; its keys can change and its answers can be held.
type jwksServer struct {
	mu       sync.Mutex
	set      jwkset.JWKSMarshal
	hold     chan struct{} // when not nil, requests wait until it is closed
	requests atomic.Int64
	*httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		hold := s.hold
		body, _ := json.Marshal(s.set)
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(t *testing.T, keys map[string]any) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	s.mu.Lock()
	s.set = set
	s.mu.Unlock()
}

// TestJWKSUnknownKid: a token with a kid the JWKS lacks is refused at once,
// even while the JWKS server hangs, and is accepted after the background
// refresh brings the key; a changed key set purges the verified cache.
func TestJWKSUnknownKid(t *testing.T) {
	k := getKeys(t)
	js := newJWKSServer(t)
	js.setKeys(t, map[string]any{"k1": &k.rsa.PublicKey})
	base := startBroadcaster(t, nil)
	a := newAgent(t, []string{base}, WithAlgorithms("RS256", "ES256"), WithJWKS(js.URL),
		WithJWKSRefresh(time.Hour, 50*time.Millisecond), WithIssuers(testIssuer))
	runAgent(t, a)

	tok1 := mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice", "jwks-1"), "k1")
	if err := checkErr(a, tok1); err != nil {
		t.Fatalf("token with a known kid: %v", err)
	}
	tok2 := mint(t, jwt.SigningMethodES256, k.ec, claims("alice", "jwks-2"), "k2")

	hold := make(chan struct{})
	js.mu.Lock()
	js.hold = hold
	js.mu.Unlock()
	// "At once": not waiting for the fetch, which hangs until its timeout.
	// The bound is half that timeout, not a speed: a loaded machine is
	// slow, and a check that waited on the network would take all of it.
	const atOnce = DefaultJWKSTimeout / 2
	before := js.requests.Load()
	start := time.Now()
	err := checkErr(a, tok2)
	if d := time.Since(start); d > atOnce {
		t.Fatalf("Check with an unknown kid took %v: it waited on the network", d)
	}
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, jwtverify.ErrUnknownKID) {
		t.Fatalf("unknown kid: %v", err)
	}
	testutil.Eventually(t, testutil.HangLimit, "a background JWKS request", func() bool { return js.requests.Load() > before })
	// While the refresh hangs, checks still answer at once.
	start = time.Now()
	for range 50 {
		if err := checkErr(a, tok2); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown kid during the refresh: %v", err)
		}
	}
	if err := checkErr(a, tok1); err != nil {
		t.Fatalf("known kid during the refresh: %v", err)
	}
	if d := time.Since(start); d > atOnce {
		t.Fatalf("51 checks took %v while the JWKS server hung: they waited on the network", d)
	}
	// Rotation: k2 added, k1 removed.
	js.setKeys(t, map[string]any{"k2": &k.ec.PublicKey})
	close(hold)
	testutil.Eventually(t, testutil.HangLimit, "the rotated-in key accepted", func() bool { return checkErr(a, tok2) == nil })
	// The key set changed: the cached k1 token must be verified again, and
	// k1 is gone.
	if err := checkErr(a, tok1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token of a key removed from the JWKS: %v", err)
	}
	// Many unknown kids cause at most one fetch per minimum interval.
	n0, flood := js.requests.Load(), time.Now()
	for i := range 200 {
		_ = checkErr(a, mint(t, jwt.SigningMethodES256, k.ec, claims("x", "flood"), "unknown-"+string(rune('a'+i%26))))
	}
	bound := int64(time.Since(flood)/(50*time.Millisecond)) + 2
	if n := js.requests.Load() - n0; n > bound {
		t.Fatalf("200 unknown kids caused %d JWKS requests in %v, want at most %d", n, time.Since(flood), bound)
	}
}

// TestJWKSRetry: a JWKS that fails at first is retried in the background
// until it loads, without any token traffic; only then is the agent ready.
func TestJWKSRetry(t *testing.T) {
	k := getKeys(t)
	var fail atomic.Bool
	fail.Store(true)
	var requests atomic.Int64
	body, _ := json.Marshal(func() jwkset.JWKSMarshal {
		jwk, err := jwkset.NewJWKFromKey(&k.rsa.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1"}})
		if err != nil {
			t.Fatal(err)
		}
		return jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}}
	}())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if fail.Load() {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	// No broadcaster: the synced state is fed by hand.
	a := newAgent(t, nil, WithAlgorithms("RS256"), WithJWKS(srv.URL), WithMaxStaleness(time.Hour))
	feed(t, a, sse.Event{Type: events.TypeSynced, Data: []byte(`{"head":"1-0"}`)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }() //nolint:errcheck // the error of a run we ended says nothing
	testutil.Eventually(t, testutil.HangLimit, "the first JWKS request", func() bool { return requests.Load() >= 1 })
	if a.Ready() {
		t.Fatal("ready without a key set")
	}
	fail.Store(false)
	select {
	case <-a.ReadyChan():
	case <-time.After(testutil.HangLimit):
		t.Fatalf("not ready %v after the JWKS came back", testutil.HangLimit)
	}
	if err := checkErr(a, mint(t, jwt.SigningMethodRS256, k.rsa, claims("a", "retry"), "k1")); err != nil {
		t.Fatal(err)
	}
}
