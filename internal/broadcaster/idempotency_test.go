package broadcaster_test

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/pkg/events"
)

// operatorJWTs stands in for the operator JWT verifier of cmd/broadcaster:
// any three-part token is the operator "ops" with the revoker role. The
// point is an actor of kind jwt with the same name as the API key "ops".
type operatorJWTs struct{}

func (operatorJWTs) VerifyOperator(raw string) (auth.Principal, error) {
	if raw != "header.ops.signature" {
		return auth.Principal{}, errors.New("unknown operator token")
	}
	return auth.Principal{Name: "ops", Role: auth.RoleRevoker, Kind: "jwt"}, nil
}

// step is one request of an idempotency scenario.
type step struct {
	// POST (a revocation or a batch), DELETE (lift) or REVOKE (RFC 7009
	// POST /v1/revoke)
	method string
	// POST: the body; DELETE: the revocation whose key is lifted; REVOKE:
	// the claims of the token posted (exp is added)
	body   string
	query  string // DELETE: the query (reason)
	key    string // Idempotency-Key, "" for none
	as     string // "key" (API key ops, the default) or "jwt" (operator JWT ops)
	status int
	// want is the answer's "status" field ("" to skip); for 409 the
	// error body must name the Idempotency-Key
	want string
	// sameAs: the answer carries the id of the answer of step sameAs
	// (1-based; 0: not checked)
	sameAs int
	// stores: whether the log must move (2xx answers; a 409 never stores)
	stores bool
}

// TestIdempotencyKeyScopes: an Idempotency-Key belongs to the caller (kind
// and name) and to one request. The same request again gets the first
// answer; anything else with the key (another body, another operation, a
// request whose first answer can no longer be given) gets 409 and stores
// nothing. No 2xx is ever given for something that is not stored.
func TestIdempotencyKeyScopes(t *testing.T) {
	t.Parallel()
	ks, _ := auth.ParseKeys(strings.NewReader(auth.KeyLine("ops", auth.RoleRevoker, "rvc_idem-test-key-ops-0123456789") + "\n"))
	s, base := startServer(t, func(c *broadcaster.Config) { c.Auth = auth.New(ks, operatorJWTs{}) })
	creds := map[string]string{"key": "rvc_idem-test-key-ops-0123456789", "jwt": "header.ops.signature"}

	tests := []struct {
		name  string
		steps []step
	}{
		{"a retry gets the first answer", []step{
			{method: "POST", body: `{"jti":"i-retry"}`, key: "K", status: 201, want: "created"},
			{method: "POST", body: `{"jti":"i-retry"}`, key: "K", status: 200, want: "duplicate", sameAs: 1},
			{method: "POST", body: `{ "jti" : "i-retry" }`, key: "K", status: 200, want: "duplicate", sameAs: 1},
		}},
		{"other matchers", []step{
			{method: "POST", body: `{"jti":"i-a"}`, key: "K", status: 201, want: "created"},
			{method: "POST", body: `{"jti":"i-b"}`, key: "K", status: 409},
		}},
		{"same matchers, another reason", []step{
			{method: "POST", body: `{"jti":"i-c","reason":"x"}`, key: "K", status: 201, want: "created"},
			{method: "POST", body: `{"jti":"i-c","reason":"y"}`, key: "K", status: 409},
		}},
		{"same matchers, another expiry", []step{
			{method: "POST", body: `{"sub":"i-d","ban":true}`, key: "K", status: 201, want: "created"},
			{method: "POST", body: `{"sub":"i-d","ban":true,"expires_at":` + strconv.FormatInt(time.Now().Add(30*24*time.Hour).Unix(), 10) + `}`, key: "K", status: 409},
		}},
		{"a revocation with the key of a lift", []step{
			{method: "POST", body: `{"sub":"i-e","ban":true}`, status: 201, want: "created"},
			{method: "DELETE", body: `{"sub":"i-e","ban":true}`, key: "K", status: 200, want: "lifted"},
			{method: "POST", body: `{"jti":"i-e2"}`, key: "K", status: 409},
		}},
		{"a lift with the key of a revocation", []step{
			{method: "POST", body: `{"sub":"i-f","ban":true}`, key: "K", status: 201, want: "created"},
			{method: "DELETE", body: `{"sub":"i-f","ban":true}`, key: "K", status: 409},
		}},
		{"a retry after the revocation was replaced", []step{
			{method: "POST", body: `{"sub":"i-g","ban":true}`, key: "K", status: 201, want: "created"},
			{method: "POST", body: `{"sub":"i-g","ban":true,"reason":"newer"}`, status: 201, want: "created"},
			{method: "POST", body: `{"sub":"i-g","ban":true}`, key: "K", status: 409},
			{method: "POST", body: `{"sub":"i-g","ban":true,"reason":"other"}`, key: "K", status: 409},
		}},
		{"a lift retried after the key was revoked again", []step{
			{method: "POST", body: `{"sub":"i-h","ban":true}`, status: 201, want: "created"},
			{method: "DELETE", body: `{"sub":"i-h","ban":true}`, key: "K", status: 200, want: "lifted"},
			{method: "POST", body: `{"sub":"i-h","ban":true}`, status: 201, want: "created"},
			{method: "DELETE", body: `{"sub":"i-h","ban":true}`, key: "K", status: 409},
		}},
		{"a lift retried", []step{
			{method: "POST", body: `{"sub":"i-i","ban":true}`, status: 201, want: "created"},
			{method: "DELETE", body: `{"sub":"i-i","ban":true}`, key: "K", status: 200, want: "lifted"},
			{method: "DELETE", body: `{"sub":"i-i","ban":true}`, key: "K", status: 200, want: "duplicate", sameAs: 2},
			{method: "DELETE", body: `{"sub":"i-i","ban":true}`, query: "reason=other", key: "K", status: 409},
		}},
		{"an API key and an operator JWT of the same name", []step{
			{method: "POST", body: `{"jti":"i-j1"}`, key: "K", as: "key", status: 201, want: "created"},
			{method: "POST", body: `{"jti":"i-j2"}`, key: "K", as: "jwt", status: 201, want: "created"},
			{method: "POST", body: `{"jti":"i-j2"}`, key: "K", as: "jwt", status: 200, want: "duplicate", sameAs: 2},
			{method: "POST", body: `{"jti":"i-j1"}`, key: "K", as: "jwt", status: 409},
		}},
		{"one revocation, then a batch", []step{
			{method: "POST", body: `{"jti":"i-k"}`, key: "K", status: 201, want: "created"},
			{method: "POST", body: `{"revocations":[{"jti":"i-k"}]}`, key: "K", status: 409},
		}},
		{"a batch, then one revocation", []step{
			{method: "POST", body: `{"revocations":[{"jti":"i-l"}]}`, key: "K", status: 201},
			{method: "POST", body: `{"jti":"i-l"}`, key: "K", status: 409},
		}},
		{"a batch retried", []step{
			{method: "POST", body: `{"revocations":[{"jti":"i-m1"},{"jti":"i-m2"}]}`, key: "K", status: 201},
			{method: "POST", body: `{"revocations":[{"jti":"i-m1"},{"jti":"i-m2"}]}`, key: "K", status: 200},
		}},
		{"an RFC 7009 revocation with the key of a revocation", []step{
			{method: "POST", body: `{"jti":"i-o1"}`, key: "K", status: 201, want: "created"},
			{method: "REVOKE", body: `{"jti":"i-o2"}`, key: "K", status: 409},
		}},
		{"an RFC 7009 revocation retried", []step{
			{method: "REVOKE", body: `{"jti":"i-p1"}`, key: "K", status: 200, stores: true},
			{method: "REVOKE", body: `{"jti":"i-p1"}`, key: "K", status: 200},
			{method: "REVOKE", body: `{"jti":"i-p2"}`, key: "K", status: 409},
			{method: "POST", body: `{"jti":"i-p1"}`, key: "K", status: 409},
		}},
		{"a batch with other items", []step{
			{method: "POST", body: `{"revocations":[{"jti":"i-n1"},{"jti":"i-n2"}]}`, key: "K", status: 201},
			{method: "POST", body: `{"revocations":[{"jti":"i-n1"},{"jti":"i-n3"},{"jti":"i-n4"}]}`, key: "K", status: 409},
		}},
	}
	for ti, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]string, len(tc.steps))
			for i, st := range tc.steps {
				as := st.as
				if as == "" {
					as = "key"
				}
				header := []string{"Authorization", "Bearer " + creds[as]}
				if st.key != "" {
					// a key of its own per scenario
					header = append(header, "Idempotency-Key", st.key+"-"+string(rune('a'+ti)))
				}
				headBefore := headSeqOf(t, s)
				var a answer
				switch st.method {
				case "POST":
					a = do(t, "POST", base+"/v1/revocations", st.body, header...)
				case "DELETE":
					target := keyOf(t, st.body)
					u := base + "/v1/revocations/" + target
					if st.query != "" {
						q, _ := url.ParseQuery(st.query)
						u += "?" + q.Encode()
					}
					a = do(t, "DELETE", u, "", header...)
				case "REVOKE":
					claims := strings.TrimSuffix(st.body, "}") + `,"exp":` + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + `}`
					form := url.Values{"token": {unsignedJWT(claims)}}.Encode()
					a = do(t, "POST", base+"/v1/revoke", form, append(header, "Content-Type", "application/x-www-form-urlencoded")...)
				}
				if a.status != st.status {
					t.Fatalf("step %d (%s %s): %d %s, want %d", i+1, st.method, st.body, a.status, a.body, st.status)
				}
				moved := headSeqOf(t, s) != headBefore
				if a.status == http.StatusConflict {
					var e apiError
					var oauth struct {
						Description string `json:"error_description"`
					}
					a.decode(t, &e)
					a.decode(t, &oauth)
					if (e.Field != "Idempotency-Key" || e.Error == "") && !strings.Contains(oauth.Description, "Idempotency-Key") {
						t.Fatalf("step %d: 409 body %s does not name the Idempotency-Key", i+1, a.body)
					}
					if moved {
						t.Fatalf("step %d: answered 409 but the log moved from %d to %d", i+1, headBefore, headSeqOf(t, s))
					}
					continue
				}
				if st.method == "REVOKE" {
					if moved != st.stores {
						t.Fatalf("step %d: the log moved: %v, want %v", i+1, moved, st.stores)
					}
					continue
				}
				var ans struct {
					Key    string `json:"key"`
					ID     string `json:"id"`
					Status string `json:"status"`
				}
				a.decode(t, &ans)
				ids[i] = ans.ID
				if st.want != "" && ans.Status != st.want {
					t.Fatalf("step %d: status %q, want %q: %s", i+1, ans.Status, st.want, a.body)
				}
				if st.sameAs > 0 && ans.ID != ids[st.sameAs-1] {
					t.Fatalf("step %d: id %s, the first answer had %s", i+1, ans.ID, ids[st.sameAs-1])
				}
				// a revocation answered as stored is what the log holds
				if st.method == "POST" && ans.Key != "" {
					var live struct {
						ID string `json:"id"`
					}
					g := do(t, "GET", base+"/v1/revocations/"+ans.Key, "", header[:2]...)
					if g.status != http.StatusOK {
						t.Fatalf("step %d: answered %q but GET finds nothing: %d %s", i+1, ans.Status, g.status, g.body)
					}
					g.decode(t, &live)
					if live.ID != ans.ID {
						t.Fatalf("step %d: answered %q with id %s, the log holds %s", i+1, ans.Status, ans.ID, live.ID)
					}
				}
			}
		})
	}
}

// keyOf is the key of the revocation body.
func keyOf(t *testing.T, body string) string {
	t.Helper()
	r, err := events.DecodeRevocation([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return r.ComputeKey()
}
