package events

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMatches(t *testing.T) {
	before := now.Add(-time.Hour).Unix()
	after := now.Add(time.Hour).Unix()
	tok := func(mod func(*Token)) *Token {
		tk := &Token{JTI: "t1", Sub: "alice", Iss: "https://idp", Kid: "k1", IssuedAt: before, HasIssuedAt: true,
			Claims: map[string]any{"tenant": "acme", "level": float64(3), "admin": true, "n": json.Number("7")}}
		if mod != nil {
			mod(tk)
		}
		return tk
	}
	issuedAfter := func(tk *Token) { tk.IssuedAt = after }
	tests := []struct {
		name string
		rev  string
		tok  *Token
		want bool
	}{
		{"jti", `{"jti":"t1"}`, tok(nil), true},
		{"jti other token", `{"jti":"t2"}`, tok(nil), false},
		{"jti whatever iat", `{"jti":"t1"}`, tok(issuedAfter), true},
		{"sub logout, older token", `{"sub":"alice"}`, tok(nil), true},
		{"sub logout, newer token", `{"sub":"alice"}`, tok(issuedAfter), false},
		{"sub logout, same second", `{"sub":"alice"}`, tok(func(tk *Token) { tk.IssuedAt = now.Unix() }), false},
		{"sub logout, token without iat", `{"sub":"alice"}`, tok(func(tk *Token) { tk.HasIssuedAt = false }), true},
		{"sub logout, other sub", `{"sub":"bob"}`, tok(nil), false},
		{"ban, older token", `{"sub":"alice","ban":true}`, tok(nil), true},
		{"ban, newer token", `{"sub":"alice","ban":true}`, tok(issuedAfter), true},
		{"kid any iat", `{"kid":"k1"}`, tok(issuedAfter), true},
		{"kid other key", `{"kid":"k2"}`, tok(nil), false},
		{"kid with issued_before, newer token", `{"kid":"k1","issued_before":"2026-11-23T12:00:00Z"}`, tok(issuedAfter), false},
		{"kid with issued_before, older token", `{"kid":"k1","issued_before":"2026-11-23T12:00:00Z"}`, tok(nil), true},
		{"iss scopes", `{"iss":"https://other","sub":"alice"}`, tok(nil), false},
		{"iss matches", `{"iss":"https://idp","sub":"alice"}`, tok(nil), true},
		{"claim string", `{"claims":{"tenant":"acme"}}`, tok(nil), true},
		{"claim string other", `{"claims":{"tenant":"globex"}}`, tok(nil), false},
		{"claim missing", `{"claims":{"region":"eu"}}`, tok(nil), false},
		{"claim number", `{"claims":{"level":3}}`, tok(nil), true},
		{"claim json.Number", `{"claims":{"n":7}}`, tok(nil), true},
		{"claim bool", `{"claims":{"admin":true}}`, tok(nil), true},
		{"claim type differs", `{"claims":{"level":"3"}}`, tok(nil), false},
		{"all claims must match", `{"claims":{"tenant":"acme","level":4}}`, tok(nil), false},
		{"tenant logout spares new tokens", `{"iss":"https://idp","claims":{"tenant":"acme"}}`, tok(issuedAfter), false},
		{"multi matcher", `{"jti":"t1","sub":"bob"}`, tok(nil), false},
		{"kid names the verifying key's kid", `{"kid":"jwks-k"}`, tok(func(tk *Token) { tk.Kid, tk.KeyID = "", "jwks-k" }), true},
		{"kid names the verifying key's thumbprint", `{"kid":"tp"}`, tok(func(tk *Token) { tk.Kid, tk.KeyThumbprint = "liar", "tp" }), true},
		{"kid names none of the key's names", `{"kid":"k9"}`, tok(func(tk *Token) { tk.KeyID, tk.KeyThumbprint = "k2", "tp" }), false},
		{"claim in a string array", `{"claims":{"groups":"contractors"}}`, tok(func(tk *Token) { tk.Claims["groups"] = []any{"staff", "contractors"} }), true},
		{"claim not in a string array", `{"claims":{"groups":"admins"}}`, tok(func(tk *Token) { tk.Claims["groups"] = []any{"staff", "contractors"} }), false},
		{"aud array", `{"claims":{"aud":"api"}}`, tok(func(tk *Token) { tk.Claims["aud"] = []any{"web", "api"} }), true},
		{"number in an array", `{"claims":{"levels":3}}`, tok(func(tk *Token) { tk.Claims["levels"] = []any{float64(1), float64(3)} }), true},
		{"Go string slice", `{"claims":{"roles":"x"}}`, tok(func(tk *Token) { tk.Claims["roles"] = []string{"y", "x"} }), true},
		{"nested arrays do not flatten", `{"claims":{"g":"a"}}`, tok(func(tk *Token) { tk.Claims["g"] = []any{[]any{"a"}} }), false},
		{"empty array", `{"claims":{"g":"a"}}`, tok(func(tk *Token) { tk.Claims["g"] = []any{} }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := prepared(t, tc.rev)
			if got := r.Matches(tc.tok); got != tc.want {
				t.Fatalf("Matches = %v, want %v (rev %+v)", got, tc.want, r)
			}
		})
	}
}

func TestMatchesDoesNotAllocate(t *testing.T) {
	r := prepared(t, `{"iss":"https://idp","claims":{"tenant":"acme"}}`)
	tk := &Token{Sub: "alice", Iss: "https://idp", IssuedAt: 1, HasIssuedAt: true, Claims: map[string]any{"tenant": "acme"}}
	if n := testing.AllocsPerRun(100, func() { r.Matches(tk) }); n != 0 {
		t.Fatalf("Matches allocates %v times", n)
	}
}

func BenchmarkMatches(b *testing.B) {
	r := Revocation{Sub: "alice", Iss: "https://idp"}
	_ = (Policy{}).Prepare(&r, now)
	tk := &Token{JTI: "t", Sub: "alice", Iss: "https://idp", IssuedAt: now.Unix() - 10, HasIssuedAt: true}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Matches(tk) {
			b.Fatal("no match")
		}
	}
}
