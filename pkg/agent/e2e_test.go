package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/testutil"
)

// TestEndToEndRevokeJTI: a real broadcaster, a real stream, real RS256
// tokens: revoking a jti makes the agent deny the token. How soon after
// the POST's acknowledgement (milliseconds) is logged here; the deadline
// only catches a hang (propagation latency is measured by cmd/bench).
func TestEndToEndRevokeJTI(t *testing.T) {
	base := startBroadcaster(t, nil)
	a := newAgent(t, []string{base}, rsaOpts(t)...)
	runAgent(t, a)

	tok := rs256(t, claims("alice", "e2e-jti-1"), "")
	other := rs256(t, claims("alice", "e2e-jti-2"), "")
	c, err := a.Check(t.Context(), tok)
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	if c.Subject != "alice" || c.ID != "e2e-jti-1" || c.Issuer != testIssuer || len(c.Audience) != 1 {
		t.Fatalf("claims %+v", c)
	}

	exp := time.Now().Add(time.Hour).Unix()
	revoke(t, base, fmt.Sprintf(`{"jti":"e2e-jti-1","expires_at":%d}`, exp))
	acked := time.Now()
	deadline := acked.Add(testutil.HangLimit)
	polls := 0
	for {
		polls++
		if errors.Is(checkErr(a, tok), ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still allowed %v after the revocation was acknowledged", testutil.HangLimit)
		}
		time.Sleep(50 * time.Microsecond) // polling a condition inside a deadline
	}
	t.Logf("POST acknowledged → first denial: %v (%d polls)", time.Since(acked), polls)
	wantErr(t, a, other, nil, "another token of the same user")
}

// TestRevocationShapes covers every shape of revocation (docs/design.md) through a real
// broadcaster: jti, subject logout, ban, kid, claim rule, iss scoping, lift
// and expiry.
func TestRevocationShapes(t *testing.T) {
	base := startBroadcaster(t, nil)
	var offset atomic.Int64 // added to the agent's clock
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	a := newAgent(t, []string{base},
		WithAlgorithms("RS256"), WithPublicKeys(&getKeys(t).rsa.PublicKey),
		WithIssuers(testIssuer, "https://other.example"), WithAudiences(testAudience),
		WithClock(clock),
		// the clock jumps ahead below: staleness is not what this test is about
		WithMaxStaleness(24*time.Hour))
	runAgent(t, a)

	// token makes an RS256 token; iat relative to at, exp far enough to
	// survive the clock jump of the expiry case.
	token := func(sub, jti string, iat time.Time, extra jwt.MapClaims, kid string) string {
		c := jwt.MapClaims{"sub": sub, "iss": testIssuer, "aud": testAudience, "jti": jti,
			"iat": iat.Unix(), "exp": time.Now().Add(6 * time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return rs256(t, c, kid)
	}
	waitDenied := func(tok, what string) {
		t.Helper()
		testutil.Eventually(t, testutil.HangLimit, what+" denied", func() bool { return errors.Is(checkErr(a, tok), ErrRevoked) })
	}
	waitAllowed := func(tok, what string) {
		t.Helper()
		testutil.Eventually(t, testutil.HangLimit, what+" allowed", func() bool { return checkErr(a, tok) == nil })
	}
	past := time.Now().Add(-time.Minute)

	t.Run("jti", func(t *testing.T) {
		tok := token("u-jti", "shape-jti", past, nil, "")
		other := token("u-jti", "shape-jti-other", past, nil, "")
		wantErr(t, a, tok, nil, "before")
		revoke(t, base, `{"jti":"shape-jti"}`)
		waitDenied(tok, "revoked jti")
		wantErr(t, a, other, nil, "another jti")
	})

	t.Run("sub logout", func(t *testing.T) {
		before := token("u-logout", "logout-1", past, nil, "")
		s := revoke(t, base, `{"sub":"u-logout"}`)
		// iat is whole seconds: the first second wholly after issued_before
		after := token("u-logout", "logout-2", s.IssuedBefore.Add(2*time.Second), nil, "")
		waitDenied(before, "token issued before the logout")
		wantErr(t, a, after, nil, "token issued after the logout")
	})

	t.Run("ban until lifted", func(t *testing.T) {
		before := token("u-ban", "ban-1", past, nil, "")
		s := revoke(t, base, `{"sub":"u-ban","ban":true}`)
		after := token("u-ban", "ban-2", time.Now().Add(2*time.Second), nil, "")
		waitDenied(before, "token issued before the ban")
		wantErr(t, a, after, ErrRevoked, "token issued after the ban")
		lift(t, base, s.Key)
		waitAllowed(before, "token issued before the lifted ban")
		wantErr(t, a, after, nil, "token issued after the lifted ban")
	})

	t.Run("kid", func(t *testing.T) {
		bad := token("u-kid", "kid-1", time.Now().Add(2*time.Second), nil, "k-compromised")
		good := token("u-kid", "kid-2", past, nil, "k-good")
		revoke(t, base, `{"kid":"k-compromised"}`)
		waitDenied(bad, "token with the compromised kid (whatever its iat)")
		wantErr(t, a, good, nil, "token with another kid")
	})

	t.Run("claim rule", func(t *testing.T) {
		acme := token("u-claims", "cl-1", past, jwt.MapClaims{"tenant": "acme"}, "")
		globex := token("u-claims", "cl-2", past, jwt.MapClaims{"tenant": "globex"}, "")
		s := revoke(t, base, `{"iss":"`+testIssuer+`","claims":{"tenant":"acme"}}`)
		acmeLater := token("u-claims", "cl-3", s.IssuedBefore.Add(2*time.Second), jwt.MapClaims{"tenant": "acme"}, "")
		waitDenied(acme, "acme token issued before the tenant logout")
		wantErr(t, a, globex, nil, "token of another tenant")
		wantErr(t, a, acmeLater, nil, "acme token issued after the tenant logout")
	})

	t.Run("iss scoping", func(t *testing.T) {
		ours := token("u-iss", "iss-1", past, nil, "")
		c := jwt.MapClaims{"sub": "u-iss", "iss": "https://other.example", "aud": testAudience, "jti": "iss-2",
			"iat": past.Unix(), "exp": time.Now().Add(6 * time.Hour).Unix()}
		theirs := rs256(t, c, "")
		revoke(t, base, `{"iss":"https://other.example","sub":"u-iss"}`)
		waitDenied(theirs, "token of the scoped issuer")
		wantErr(t, a, ours, nil, "same subject at another issuer")
	})

	t.Run("lift re-admits", func(t *testing.T) {
		tok := token("u-lift", "lift-1", past, nil, "")
		s := revoke(t, base, `{"jti":"lift-1"}`)
		waitDenied(tok, "revoked token")
		lift(t, base, s.Key)
		waitAllowed(tok, "lifted token")
	})

	t.Run("expiry forgets", func(t *testing.T) {
		tok := token("u-exp", "exp-1", past, nil, "")
		expires := time.Now().Add(time.Hour)
		revoke(t, base, fmt.Sprintf(`{"jti":"exp-1","expires_at":%d}`, expires.Unix()))
		waitDenied(tok, "token before the revocation expires")
		// Just before expires_at + leeway (30s) + the denylist's extra
		// minute: still denied. Just after: forgotten.
		offset.Store(int64(time.Until(expires) + DefaultLeeway + time.Minute - 5*time.Second))
		wantErr(t, a, tok, ErrRevoked, "token just before the revocation's end")
		offset.Store(int64(time.Until(expires) + DefaultLeeway + time.Minute + 5*time.Second))
		wantErr(t, a, tok, nil, "token after the revocation expired")
		if n := a.Sweep(); n < 1 {
			t.Errorf("Sweep dropped %d revocations, want the expired one at least", n)
		}
		offset.Store(0)
	})
}

// TestDenylistOverflow: 5,000 revocations through the real stream into a
// denylist of capacity 100: every one still denies.
func TestDenylistOverflow(t *testing.T) {
	const n, capacity = 5000, 100
	base := startBroadcaster(t, nil)
	a := newAgent(t, []string{base}, append(hsOpts(t), WithDenylistCapacity(capacity))...)
	runAgent(t, a)

	var b strings.Builder
	b.WriteString(`{"revocations":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"jti":"ovf-%d"}`, i)
	}
	b.WriteString(`]}`)
	code, body, err := request("POST", base+"/v1/revocations", b.String())
	if err != nil || code != http.StatusCreated {
		t.Fatalf("batch POST: %d %.300s %v", code, body, err)
	}
	var answer struct{ Created int }
	if err := json.Unmarshal(body, &answer); err != nil || answer.Created != n {
		t.Fatalf("batch created %d (%v), want %d", answer.Created, err, n)
	}
	testutil.Eventually(t, testutil.HangLimit, "every revocation applied", func() bool { return a.Stats().Revokes >= n })

	for i := range n {
		tok := hs256(t, claims("user", fmt.Sprintf("ovf-%d", i)))
		if err := checkErr(a, tok); !errors.Is(err, ErrRevoked) {
			t.Fatalf("token ovf-%d: %s, want revoked", i, describe(err))
		}
	}
	for i := range 100 {
		tok := hs256(t, claims("user", fmt.Sprintf("not-revoked-%d", i)))
		if err := checkErr(a, tok); err != nil {
			t.Fatalf("token not-revoked-%d: %v, want allowed", i, err)
		}
	}
	st := a.Stats()
	if st.Denylist.Exact != capacity || st.Denylist.Spilled != n-capacity || st.SpilledTotal != n-capacity {
		t.Fatalf("denylist stats %+v, spilled total %d; want %d exact and %d spilled", st.Denylist, st.SpilledTotal, capacity, n-capacity)
	}
	t.Logf("denylist: %+v", st.Denylist)
}
