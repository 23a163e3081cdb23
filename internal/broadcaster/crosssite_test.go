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

// hmacTokens verifies HS256 tokens with one secret: the TokenVerifier of
// the tests of POST /v1/revoke with verified tokens.
type hmacTokens struct{ secret []byte }

func (v hmacTokens) VerifyToken(raw string) (events.Token, time.Time, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"})).ParseWithClaims(raw, claims,
		func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return events.Token{}, time.Time{}, err
	}
	return broadcaster.FactsFromClaims(claims)
}

func (v hmacTokens) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(v.secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCrossSiteWrites: a browser page on another site cannot change
// anything: JSON endpoints want Content-Type: application/json (a form or
// text/plain body is a CORS "simple" request, sent without asking), writes
// whose Origin or Sec-Fetch-Site says another site are refused, and
// without credentials only loopback Host names are served (DNS
// rebinding). Every refusal stores nothing.
func TestCrossSiteWrites(t *testing.T) {
	t.Parallel()
	const app = "https://app.example"
	open, openBase := startServer(t, func(c *broadcaster.Config) { c.CORSOrigins = []string{app} })
	star, starBase := startServer(t, func(c *broadcaster.Config) { c.CORSOrigins = []string{"*"} })
	a, _, revoker := keys(t)
	withKeys, keysBase := startServer(t, func(c *broadcaster.Config) { c.Auth = a })
	tokens := hmacTokens{secret: []byte("a secret of at least thirty-two bytes!")}
	verified, verifiedBase := startServer(t, func(c *broadcaster.Config) { c.TokenVerifier = tokens })

	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	unsigned := unsignedJWT(`{"jti":"csrf-unsigned","sub":"victim","exp":` + exp + `}`)
	signed := tokens.sign(t, jwt.MapClaims{"jti": "csrf-signed", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	lift := "/v1/revocations/" + post(t, openBase, `{"sub":"mallory","ban":true}`).Key
	host := strings.TrimPrefix(openBase, "http://")
	_, port, _ := strings.Cut(host, ":")
	jsonCT := []string{"Content-Type", "application/json"}
	with := func(h ...string) []string { return append(append([]string{}, jsonCT...), h...) }

	cases := []struct {
		name         string
		server       *broadcaster.Server
		base         string
		method, path string
		body         string
		header       []string // Content-Type included; none when absent
		want         int
		field        string // the field the error names
	}{
		// Content-Type
		{"text/plain post", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-1"}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"form post", open, openBase, "POST", "/v1/revocations", `jti=csrf-2`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"multipart post", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-3"}`, []string{"Content-Type", "multipart/form-data; boundary=x"}, 415, "Content-Type"},
		{"no content type", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-4"}`, nil, 415, "Content-Type"},
		{"json with charset", open, openBase, "POST", "/v1/revocations", `{"jti":"ok-1"}`, []string{"Content-Type", "application/json; charset=utf-8"}, 201, ""},
		{"json, credentials", withKeys, keysBase, "POST", "/v1/revocations", `{"jti":"ok-2"}`, with("Authorization", "Bearer "+revoker), 201, ""},
		{"text/plain, credentials", withKeys, keysBase, "POST", "/v1/revocations", `{"jti":"csrf-5"}`, []string{"Content-Type", "text/plain", "Authorization", "Bearer " + revoker}, 415, "Content-Type"},

		// Origin and Sec-Fetch-Site
		{"origin of another site", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-6"}`, with("Origin", "https://evil.example"), 403, "Origin"},
		{"origin null", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-7"}`, with("Origin", "null"), 403, "Origin"},
		{"other port is another origin", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-8"}`, with("Origin", "http://127.0.0.1:1"), 403, "Origin"},
		{"sec-fetch-site cross-site", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-9"}`, with("Sec-Fetch-Site", "cross-site"), 403, "Sec-Fetch-Site"},
		{"sec-fetch-site same-site", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-10"}`, with("Sec-Fetch-Site", "same-site"), 403, "Sec-Fetch-Site"},
		{"cross-site lift", open, openBase, "DELETE", lift, "", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, "Origin"},
		{"cross-site, credentials", withKeys, keysBase, "POST", "/v1/revocations", `{"jti":"csrf-11"}`, with("Authorization", "Bearer "+revoker, "Origin", "https://evil.example"), 403, "Origin"},
		{"star allows reading, not writing", star, starBase, "POST", "/v1/revocations", `{"jti":"csrf-12"}`, with("Origin", "https://evil.example"), 403, "Origin"},
		{"same origin", open, openBase, "POST", "/v1/revocations", `{"jti":"ok-3"}`, with("Origin", "http://"+host, "Sec-Fetch-Site", "same-origin"), 201, ""},
		{"listed origin", open, openBase, "POST", "/v1/revocations", `{"jti":"ok-4"}`, with("Origin", app, "Sec-Fetch-Site", "cross-site"), 201, ""},
		{"typed in the address bar", open, openBase, "POST", "/v1/revocations", `{"jti":"ok-5"}`, with("Sec-Fetch-Site", "none"), 201, ""},
		{"cross-site read is not a write", open, openBase, "GET", "/v1/revocations", "", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 200, ""},

		// Host without credentials
		{"rebound host name", open, openBase, "POST", "/v1/revocations", `{"jti":"csrf-13"}`, with("Host", "evil.example:"+port), 421, "Host"},
		{"rebound host, read", open, openBase, "GET", "/v1/revocations", "", []string{"Host", "evil.example"}, 421, "Host"},
		{"rebound host, lift", open, openBase, "DELETE", lift, "", []string{"Host", "evil.example:" + port}, 421, "Host"},
		{"localhost", open, openBase, "GET", "/v1/revocations", "", []string{"Host", "localhost:" + port}, 200, ""},
		{"localhost without port", open, openBase, "GET", "/v1/revocations", "", []string{"Host", "LocalHost"}, 200, ""},
		{"127.0.0.0/8", open, openBase, "GET", "/v1/revocations", "", []string{"Host", "127.3.2.1:" + port}, 200, ""},
		{"ipv6 loopback", open, openBase, "GET", "/v1/revocations", "", []string{"Host", "[::1]:" + port}, 200, ""},
		{"any host with credentials", withKeys, keysBase, "GET", "/v1/revocations", "", []string{"Host", "revocast.example", "Authorization", "Bearer " + revoker}, 200, ""},

		// RFC 7009
		{"revoke form with an unsigned token", open, openBase, "POST", "/v1/revoke", url.Values{"token": {unsigned}}.Encode(), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"revoke text/plain", open, openBase, "POST", "/v1/revoke", "token=" + unsigned, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"revoke json, cross-site", open, openBase, "POST", "/v1/revoke", `{"token":"` + unsigned + `"}`, with("Origin", "https://evil.example"), 403, "Origin"},
		{"revoke json", open, openBase, "POST", "/v1/revoke", `{"token":"` + unsigned + `","token_type_hint":"access_token"}`, jsonCT, 200, ""},
		{"revoke form with a verified token", verified, verifiedBase, "POST", "/v1/revoke", url.Values{"token": {signed}}.Encode(), []string{"Content-Type", "application/x-www-form-urlencoded"}, 200, ""},
		{"revoke form, verified, cross-site", verified, verifiedBase, "POST", "/v1/revoke", url.Values{"token": {signed}}.Encode(), []string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site"}, 403, "Sec-Fetch-Site"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head := headSeqOf(t, tc.server)
			req, err := http.NewRequest(tc.method, tc.base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				if tc.header[i] == "Host" {
					req.Host = tc.header[i+1]
					continue
				}
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"` // RFC 7009's format
				Field       string `json:"field"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d %+v, want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			if tc.want < 400 {
				return
			}
			if body.Field != tc.field || !strings.Contains(body.Error+body.Description, tc.field) {
				t.Fatalf("error %+v: want it to name %s", body, tc.field)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Fatalf("Content-Type of the refusal %q", got)
			}
			if headSeqOf(t, tc.server) != head {
				t.Fatal("a refused request changed the log")
			}
		})
	}
}
