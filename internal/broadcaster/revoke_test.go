package broadcaster_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/events"
)

// holderTokens verifies the tokens posted to POST /v1/revoke with an HMAC
// secret, as --token-hmac-secret-file does.
type holderTokens []byte

func (k holderTokens) VerifyToken(raw string) (events.Token, time.Time, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return []byte(k), nil })
	if err != nil {
		return events.Token{}, time.Time{}, err
	}
	return broadcaster.FactsFromClaims(claims)
}

// liveState reads the full state a new subscriber receives: the live
// revocations by key.
func liveState(t *testing.T, base string) map[string]events.Revocation {
	t.Helper()
	sub := subscribe(t, base+"/v1/events")
	revs := map[string]events.Revocation{}
	for _, ev := range sub.until(t, events.TypeSynced) {
		switch ev.Type {
		case events.TypeRevoke:
			var r events.Revocation
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				t.Fatalf("revoke event %s: %v", ev.Data, err)
			}
			revs[r.Key] = r
		case events.TypeLift:
			var l events.Lift
			if err := json.Unmarshal(ev.Data, &l); err != nil {
				t.Fatal(err)
			}
			delete(revs, l.Key)
		}
	}
	return revs
}

// TestTokenHolderNeverWeakens: a token holder (POST /v1/revoke with a
// verified token and no operator credential) adds a revocation of its own
// and never replaces, narrows or shortens anyone else's, nor its own
// earlier ones; posting a token that is already revoked changes nothing.
// Whether each token is revoked is decided with the agents' matching code
// on the full state a new agent receives.
func TestTokenHolderNeverWeakens(t *testing.T) {
	t.Parallel()
	secret := []byte("revocast token holder tests: 32+ bytes of HMAC secret")
	a, reader, revoker := keys(t)
	s, base := startServer(t, func(c *broadcaster.Config) { c.Auth = a; c.PublicEvents = true; c.TokenVerifier = holderTokens(secret) })
	const iss = "https://idp.example"
	now := time.Now()

	type token struct {
		jti      string
		iat, exp time.Duration // from now
	}
	sign := func(t *testing.T, sub string, tk token) (string, events.Token) {
		claims := jwt.MapClaims{"sub": sub, "iss": iss, "iat": now.Add(tk.iat).Unix(), "exp": now.Add(tk.exp).Unix()}
		facts := events.Token{Sub: sub, Iss: iss, IssuedAt: now.Add(tk.iat).Unix(), HasIssuedAt: true}
		if tk.jti != "" {
			claims["jti"], facts.JTI = tk.jti, tk.jti
		}
		raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return raw, facts
	}
	// the exp claim, in whole seconds
	expOf := func(tk token) time.Time { return time.Unix(now.Add(tk.exp).Unix(), 0) }
	// revokedForLife: a live revocation matches the token (with the agents'
	// matching code) and lasts at least until the token expires.
	revokedForLife := func(state map[string]events.Revocation, facts events.Token, exp time.Time) bool {
		for _, r := range state {
			if r.Matches(&facts) && (r.ExpiresAt.IsZero() || !r.ExpiresAt.Before(exp)) {
				return true
			}
		}
		return false
	}

	old := token{iat: -2 * time.Hour, exp: time.Hour}
	newer := token{iat: -10 * time.Minute, exp: 30 * time.Minute}
	later := token{iat: time.Minute, exp: 2 * time.Hour} // issued after every revocation here
	long := token{iat: -2 * time.Hour, exp: 3 * time.Hour}
	type verdict struct {
		token
		revoked bool // for the rest of its life
	}
	tests := []struct {
		name     string
		operator string  // body an operator posts first ("": none); %s is the case's subject
		holder   []token // posted to /v1/revoke in this order, by their holders
		writes   []bool  // whether each holder post stores something
		want     []verdict
	}{
		{
			name:     "an older token does not move an operator's logout back",
			operator: `{"sub":"%s","iss":"` + iss + `","reason":"operator logout"}`,
			holder:   []token{{iat: -3 * time.Hour, exp: 20 * time.Hour}},
			writes:   []bool{false}, // already revoked by the logout
			want:     []verdict{{old, true}, {newer, true}, {later, false}},
		},
		{
			name:     "a token an operator's ban revokes changes nothing",
			operator: `{"sub":"%s","ban":true}`,
			holder:   []token{newer},
			writes:   []bool{false},
			want:     []verdict{{old, true}, {newer, true}, {later, true}},
		},
		{
			name:   "a later post of an older token does not narrow an earlier holder's",
			holder: []token{newer, {iat: -2 * time.Hour, exp: 20 * time.Minute}},
			writes: []bool{true, false}, // already revoked until its exp
			want:   []verdict{{newer, true}, {later, false}},
		},
		{
			name:   "a later post of an older, longer-lived token adds its own",
			holder: []token{newer, old},
			writes: []bool{true, true}, // the first one expires before it
			want:   []verdict{{old, true}, {newer, true}, {later, false}},
		},
		{
			name:   "a newer token adds a revocation of its own",
			holder: []token{old, newer},
			writes: []bool{true, true},
			want:   []verdict{{old, true}, {newer, true}, {later, false}},
		},
		{
			name:   "a shorter-lived newer token does not shorten an older one's",
			holder: []token{long, {iat: -time.Minute, exp: time.Minute}},
			writes: []bool{true, true},
			want:   []verdict{{long, true}, {later, false}},
		},
		{
			name:     "a jti token does not shorten an operator's jti revocation",
			operator: `{"jti":"%s-jti","iss":"` + iss + `","expires_at":"` + now.Add(3*time.Hour).UTC().Format(time.RFC3339) + `"}`,
			holder:   []token{{jti: "-jti", iat: -time.Minute, exp: time.Hour}},
			writes:   []bool{false},
		},
		{
			name:     "a jti token outliving an operator's jti revocation adds its own",
			operator: `{"jti":"%s-jti","iss":"` + iss + `","expires_at":"` + now.Add(time.Minute).UTC().Format(time.RFC3339) + `"}`,
			holder:   []token{{jti: "-jti", iat: -time.Minute, exp: time.Hour}},
			writes:   []bool{true},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := "user-" + strconv.Itoa(i)
			var op stored
			if tc.operator != "" {
				op = post(t, base, strings.ReplaceAll(tc.operator, "%s", sub), bearer(revoker)...)
			}
			var holderKeys []string
			for j, tk := range tc.holder {
				if tk.jti != "" {
					tk.jti = sub + tk.jti
				}
				raw, facts := sign(t, sub, tk)
				head := headSeqOf(t, s)
				// no operator credential: the token is the credential
				if a := doForm(t, base+"/v1/revoke", url.Values{"token": {raw}}.Encode(), ""); a.status != http.StatusOK {
					t.Fatalf("holder post %d: %d %s", j, a.status, a.body)
				}
				after := headSeqOf(t, s)
				if wrote := after != head; wrote != tc.writes[j] {
					t.Errorf("holder post %d stored something: %v, want %v", j, wrote, tc.writes[j])
				}
				state := liveState(t, base)
				if !revokedForLife(state, facts, expOf(tk)) {
					t.Errorf("holder post %d: the posted token is not revoked until its exp", j)
				}
				for key, r := range state {
					if after != head && r.Seq == after {
						holderKeys = append(holderKeys, key)
					}
				}
			}
			state := liveState(t, base)
			if tc.operator != "" {
				got, ok := state[op.Key]
				if !ok || got.Seq != op.Seq || !got.IssuedBefore.Equal(op.IssuedBefore.Time) || !got.ExpiresAt.Equal(op.ExpiresAt.Time) {
					t.Errorf("the operator's revocation was replaced or changed: %+v, now %+v (present %v)", op.Revocation, got, ok)
				}
			}
			// what each holder post stored is still there, under a key
			// that no operator revocation can have
			for _, key := range holderKeys {
				r, ok := state[key]
				if !ok {
					t.Errorf("a holder's revocation (key %s) was replaced", key)
					continue
				}
				if key == r.ComputeKey() {
					t.Errorf("a holder's revocation has the key an operator's with its matchers has: %+v", r)
				}
			}
			for _, v := range tc.want {
				_, facts := sign(t, sub, v.token)
				if got := revokedForLife(state, facts, expOf(v.token)); got != v.revoked {
					t.Errorf("token issued at now%+v, expiring at now%+v: revoked until it expires %v, want %v", v.iat, v.exp, got, v.revoked)
				}
			}
		})
	}

	t.Run("only an operator lifts a holder's revocation", func(t *testing.T) {
		raw, _ := sign(t, "user-lift", token{jti: "lift-me", iat: -time.Minute, exp: time.Hour})
		if a := doForm(t, base+"/v1/revoke", url.Values{"token": {raw}}.Encode(), ""); a.status != http.StatusOK {
			t.Fatalf("holder post: %d %s", a.status, a.body)
		}
		var list listAnswer
		do(t, "GET", base+"/v1/revocations?jti=lift-me", "", bearer(reader)...).decode(t, &list)
		if len(list.Revocations) != 1 {
			t.Fatalf("holder revocation not listed: %s", list.Revocations)
		}
		var r events.Revocation
		if err := json.Unmarshal(list.Revocations[0], &r); err != nil {
			t.Fatal(err)
		}
		if a := do(t, "DELETE", base+"/v1/revocations/"+r.Key, "", bearer(reader)...); a.status != http.StatusForbidden {
			t.Fatalf("a reader lifted it: %d", a.status)
		}
		if a := do(t, "DELETE", base+"/v1/revocations/"+r.Key, "", bearer(revoker)...); a.status != http.StatusOK {
			t.Fatalf("the operator could not lift it: %d %s", a.status, a.body)
		}
	})
}
