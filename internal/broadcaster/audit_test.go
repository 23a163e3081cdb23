package broadcaster_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/revocast/revocast/internal/auth"
)

// logBuffer collects a server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestRefusalsAreAudited: every refusal (400, 401, 403, 409, 413, 415, 421)
// is one audit line with the status and the actor with its kind; answers
// to an allowed origin carry its CORS header, refusals included.
func TestRefusalsAreAudited(t *testing.T) {
	t.Parallel()
	const app = "https://app.example"
	reader, _ := auth.GenerateKey()
	revoker, _ := auth.GenerateKey()
	ks, err := auth.ParseKeys(strings.NewReader(
		auth.KeyLine("dashboard", auth.RoleReader, reader) + "\n" + auth.KeyLine("ops", auth.RoleRevoker, revoker) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	nobody := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJub2JvZHkifQ.nobody"
	logs := &logBuffer{}
	_, base := startServer(t, func(c *broadcaster.Config) {
		c.Auth = auth.New(ks, noRoleVerifier{nobody})
		c.MaxBodyBytes = 1024
		c.CORSOrigins = []string{app}
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	openLogs := &logBuffer{}
	_, openBase := startServer(t, func(c *broadcaster.Config) { c.Logger = slog.New(slog.NewJSONHandler(openLogs, nil)) })
	post(t, base, `{"jti":"audited"}`, "Authorization", "Bearer "+revoker, "Idempotency-Key", "audit-1")

	cases := []struct {
		name         string
		logs         *logBuffer
		base         string
		method, path string
		body         string
		header       []string
		status       int
		actor        string
	}{
		{"400 malformed JSON", logs, base, "POST", "/v1/revocations", `{"jti":`, bearer(revoker), 400, "key:ops"},
		{"400 bad field", logs, base, "POST", "/v1/revocations", `{"jti":1}`, bearer(revoker), 400, "key:ops"},
		{"400 bad query", logs, base, "GET", "/v1/revocations?limit=0", "", bearer(reader), 400, "key:dashboard"},
		{"400 revoke without token", logs, base, "POST", "/v1/revoke", `{}`, bearer(revoker), 400, "key:ops"},
		{"409 idempotency conflict", logs, base, "POST", "/v1/revocations", `{"jti":"other"}`, append(bearer(revoker), "Idempotency-Key", "audit-1"), 409, "key:ops"},
		{"413 body too large", logs, base, "POST", "/v1/revocations", `{"jti":"` + strings.Repeat("x", 2000) + `"}`, bearer(revoker), 413, "key:ops"},
		{"415 text/plain", logs, base, "POST", "/v1/revocations", `{"jti":"x"}`, append(bearer(revoker), "Content-Type", "text/plain"), 415, "key:ops"},
		{"401 no credential", logs, base, "GET", "/v1/events", "", []string{"Origin", app}, 401, "anonymous"},
		{"403 weak role", logs, base, "POST", "/v1/revocations", `{"jti":"y"}`, append(bearer(reader), "Origin", app), 403, "key:dashboard"},
		{"403 no role", logs, base, "GET", "/v1/revocations", "", append(bearer(nobody), "Origin", app), 403, "jwt:nobody"},
		{"403 cross-site", logs, base, "POST", "/v1/revocations", `{"jti":"z"}`, append(bearer(revoker), "Origin", "https://evil.example"), 403, "key:ops"},
		{"400 without credentials", openLogs, openBase, "POST", "/v1/revocations", `{"nothing":1}`, nil, 400, "anonymous"},
		{"415 without credentials", openLogs, openBase, "POST", "/v1/revocations", `{"jti":"x"}`, []string{"Content-Type", "text/plain"}, 415, "anonymous"},
		{"421 without credentials", openLogs, openBase, "GET", "/v1/revocations", "", []string{"Host", "rebound.example"}, 421, "anonymous"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.logs.lines(t))
			a := do(t, tc.method, tc.base+tc.path, tc.body, tc.header...)
			if a.status != tc.status {
				t.Fatalf("%d %s, want %d", a.status, a.body, tc.status)
			}
			origin := ""
			for i := 0; i+1 < len(tc.header); i += 2 {
				if tc.header[i] == "Origin" {
					origin = tc.header[i+1]
				}
			}
			if origin == app && a.header.Get("Access-Control-Allow-Origin") != app {
				t.Fatalf("a %d to an allowed origin without Access-Control-Allow-Origin: %v", a.status, a.header)
			}
			var found []map[string]any
			for _, l := range tc.logs.lines(t)[before:] {
				if l["audit"] == true && l["status"] == float64(tc.status) {
					found = append(found, l)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%d audit lines with status %d, want 1: %v", len(found), tc.status, tc.logs.lines(t)[before:])
			}
			l := found[0]
			if l["actor"] != tc.actor || l["path"] != strings.Split(tc.path, "?")[0] || l["remote"] == nil || l["reason"] == nil {
				t.Fatalf("audit line %v: want actor %s, the path, the remote address and a reason", l, tc.actor)
			}
			if all := tc.logs.String(); strings.Contains(all, revoker) || strings.Contains(all, reader) {
				t.Fatal("a credential was logged")
			}
		})
	}
}
