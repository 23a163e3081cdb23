package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/testutil"
)

// revoke posts a revocation to the broadcaster and fails the test unless it
// is stored.
func revoke(t *testing.T, base, body string) {
	t.Helper()
	resp, err := client.Post(base+"/v1/revocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("revoke %s: %v", body, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke %s: %d", body, resp.StatusCode)
	}
}

// authBody sends GET /auth with tok and returns the answer with its JSON
// body decoded (nil for a 200, which has none).
func authBody(t *testing.T, base, tok string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /auth: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if resp.StatusCode != http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET /auth %d: body: %v", resp.StatusCode, err)
		}
	}
	return resp, body
}

// TestSidecarRefusesIdentityHeadersCannotCarry: the sidecar never passes
// upstream a subject or issuer other than the one the denylist checked. A
// ban on "mallory" must not let "mallory\x00", "mal\tlory" or " mallory"
// through as X-Auth-Subject: mallory (net/http and proxies strip or trim
// such values): those tokens are refused like any invalid token, on /auth
// and on /v1/introspect alike, while names that travel byte for byte
// (inner spaces, UTF-8 beyond ASCII) are passed exactly.
func TestSidecarRefusesIdentityHeadersCannotCarry(t *testing.T) {
	b := testutil.Start(t, "broadcaster", "/readyz", "--addr", "127.0.0.1:0", "--data", t.TempDir())
	// No --issuer: every iss is accepted, so only the header rule decides.
	ag := testutil.Start(t, "agent", "/readyz", "--broadcaster", b.URL, "--addr", "127.0.0.1:0",
		"--public-key", publicKeyFile(t), "--audience", audience, "--realm", "orders")

	revoke(t, b.URL, `{"sub":"mallory","ban":true,"reason":"test"}`)
	revoke(t, b.URL, `{"iss":"`+issuer+`","sub":"alice","ban":true,"reason":"test"}`)
	banned := token(t, "mallory", "id-banned", nil)
	testutil.Eventually(t, testutil.HangLimit, "the ban to reach the sidecar", func() bool { c, _ := get(t, ag.URL+"/auth", banned); return c == 401 })
	if c, _ := get(t, ag.URL+"/auth", token(t, "alice", "id-alice", nil)); c != 401 {
		t.Fatalf("alice at %s: %d, want 401 (banned)", issuer, c)
	}

	refused := []struct {
		name, sub, iss string
	}{
		{"NUL after the subject", "mallory\x00", issuer},
		{"TAB inside the subject", "mal\tlory", issuer},
		{"leading space", " mallory", issuer},
		{"trailing space", "mallory ", issuer},
		{"leading TAB", "\tmallory", issuer},
		{"CR LF", "mallory\r\n", issuer},
		{"LF inside", "mal\nlory", issuer},
		{"DEL", "mallory\x7f", issuer},
		{"other C0 control", "mal\x01lory", issuer},
		{"C1 control NEL", "mallory\u0085", issuer},
		{"leading no-break space", "\u00a0mallory", issuer},
		{"trailing ideographic space", "mallory\u3000", issuer},
		{"trailing BOM", "mallory\ufeff", issuer},
		{"issuer with leading space", "alice", " " + issuer},
		{"issuer with trailing TAB", "alice", issuer + "\t"},
		{"issuer with NUL", "alice", issuer + "\x00"},
		{"issuer with CR", "alice", issuer + "\r"},
	}
	for i, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			tok := token(t, tc.sub, "id-refused-"+string(rune('a'+i)), func(c jwt.MapClaims) { c["iss"] = tc.iss })
			resp, body := authBody(t, ag.URL, tok)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("/auth %d, X-Auth-Subject %q, X-Auth-Issuer %q: want 401",
					resp.StatusCode, resp.Header.Get("X-Auth-Subject"), resp.Header.Get("X-Auth-Issuer"))
			}
			if _, ok := resp.Header["X-Auth-Subject"]; ok {
				t.Errorf("a refusal carries X-Auth-Subject %q", resp.Header.Get("X-Auth-Subject"))
			}
			if _, ok := resp.Header["X-Auth-Issuer"]; ok {
				t.Errorf("a refusal carries X-Auth-Issuer %q", resp.Header.Get("X-Auth-Issuer"))
			}
			const prefix = `Bearer realm="orders", error="invalid_token", error_description="`
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, prefix) {
				t.Errorf("WWW-Authenticate %q, want the RFC 6750 form starting %q", got, prefix)
			}
			if body["error"] != "invalid_token" {
				t.Errorf("body %v, want error invalid_token", body)
			}
			if status, out := introspect(t, ag.URL, tok); status != http.StatusOK || out["active"] != false || len(out) != 1 {
				t.Errorf("introspect: %d %v, want {\"active\":false}", status, out)
			}
		})
	}

	admitted := []struct {
		name, sub string
	}{
		{"plain", "bob"},
		{"inner space", "Bob Smith"},
		{"UTF-8 beyond ASCII", "müller"},
		{"CJK", "山田"},
		{"inner no-break space", "Bob\u00a0Smith"},
	}
	for i, tc := range admitted {
		t.Run("admitted/"+tc.name, func(t *testing.T) {
			tok := token(t, tc.sub, "id-admitted-"+string(rune('a'+i)), nil)
			resp, _ := authBody(t, ag.URL, tok)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/auth %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Values("X-Auth-Subject"); len(got) != 1 || got[0] != tc.sub {
				t.Errorf("X-Auth-Subject %q, want exactly %q", got, tc.sub)
			}
			if got := resp.Header.Values("X-Auth-Issuer"); len(got) != 1 || got[0] != issuer {
				t.Errorf("X-Auth-Issuer %q, want exactly %q", got, issuer)
			}
			if status, out := introspect(t, ag.URL, tok); status != http.StatusOK || out["active"] != true || out["sub"] != tc.sub {
				t.Errorf("introspect: %d %v, want active with sub %q", status, out, tc.sub)
			}
		})
	}
}

// TestHeaderExact pins the rule, including what a JWT decoder never hands
// over today (invalid UTF-8).
func TestHeaderExact(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"mallory", true},
		{"https://idp.example/realms/a b", true},
		{"müller", true},
		{"山田 太郎", true},
		{"a\u00a0b", true},
		{"a\u200bb", true},
		{"mallory\x00", false},
		{"mal\tlory", false},
		{" mallory", false},
		{"mallory ", false},
		{"mallory\r", false},
		{"mal\nlory", false},
		{"mallory\x7f", false},
		{"mallory\u0080", false},
		{"mallory\u009f", false},
		{"\u2028mallory", false},
		{"mallory\u00a0", false},
		{"\ufeffmallory", false},
		{"mallory\xff", false},
		{"mallory\xc3", false},
		{" ", false},
	} {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			if err := headerExact(tc.in); (err == nil) != tc.ok {
				t.Fatalf("headerExact(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}
