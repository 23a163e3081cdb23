package broadcaster_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// TestRoleMatrix: every endpoint against no credential, a wrong key, a
// reader and a revoker.
func TestRoleMatrix(t *testing.T) { testRoleMatrix(t, embeddedNATS) }

func testRoleMatrix(t *testing.T, on backend) {
	a, reader, revoker := keys(t)
	_, base := on.start(t, func(c *broadcaster.Config) { c.Auth = a })
	existing := post(t, base, `{"sub":"carol","ban":true}`, bearer(revoker)...)
	wrong, _ := auth.GenerateKey()

	type endpoint struct {
		name, method, path, body string
		need                     auth.Role
	}
	endpoints := []endpoint{
		{"post", "POST", "/v1/revocations", `{"jti":"m-%d"}`, auth.RoleRevoker},
		{"list", "GET", "/v1/revocations", "", auth.RoleReader},
		{"get", "GET", "/v1/revocations/" + existing.Key, "", auth.RoleReader},
		{"lift unknown", "DELETE", "/v1/revocations/" + strings.Repeat("ab", 16), "", auth.RoleRevoker},
		{"events", "GET", "/v1/events?last_event_id=now", "", auth.RoleReader},
		{"healthz", "GET", "/healthz", "", auth.RoleNone},
		{"readyz", "GET", "/readyz", "", auth.RoleNone},
		{"metrics", "GET", "/metrics", "", auth.RoleNone},
	}
	creds := []struct {
		name string
		key  string
		role auth.Role
		bad  bool
	}{
		{"no credential", "", auth.RoleNone, false},
		{"wrong key", wrong, auth.RoleNone, true},
		{"reader", reader, auth.RoleReader, false},
		{"revoker", revoker, auth.RoleRevoker, false},
	}
	n := 0
	for _, ep := range endpoints {
		for _, c := range creds {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				n++
				body := ep.body
				body = strings.Replace(body, "%d", strconv.Itoa(n), 1)
				want := http.StatusOK
				switch {
				case ep.need == auth.RoleNone:
				case c.role == auth.RoleNone:
					want = http.StatusUnauthorized
				case !c.role.Allows(ep.need):
					want = http.StatusForbidden
				case ep.method == "POST":
					want = http.StatusCreated
				case ep.name == "lift unknown":
					want = http.StatusNotFound
				}
				status, hdr := statusOf(t, ep.method, base+ep.path, body, c.key)
				if status != want {
					t.Fatalf("%s %s with %s: %d, want %d", ep.method, ep.path, c.name, status, want)
				}
				if want == http.StatusUnauthorized {
					wa := hdr.Get("WWW-Authenticate")
					if !strings.HasPrefix(wa, "Bearer") || (c.bad != strings.Contains(wa, "invalid_token")) {
						t.Fatalf("WWW-Authenticate %q", wa)
					}
				}
				if want == http.StatusForbidden && !strings.Contains(hdr.Get("WWW-Authenticate"), "insufficient_scope") {
					t.Fatalf("WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
				}
			})
		}
	}

	// the actor is the key's name
	r := post(t, base, `{"jti":"by-ops"}`, bearer(revoker)...)
	if r.Actor != "ops" {
		t.Fatalf("actor %q, want ops", r.Actor)
	}
}

// statusOf makes a request and, for a stream, only reads the status.
func statusOf(t *testing.T, method, u, body, key string) (int, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestPublicEvents(t *testing.T) {
	t.Parallel()
	a, _, _ := keys(t)
	_, base := startServer(t, func(c *broadcaster.Config) { c.Auth = a; c.PublicEvents = true })
	if st, _ := statusOf(t, "GET", base+"/v1/events?last_event_id=now", "", ""); st != http.StatusOK {
		t.Fatalf("public events: %d", st)
	}
	if st, _ := statusOf(t, "GET", base+"/v1/revocations", "", ""); st != http.StatusUnauthorized {
		t.Fatalf("list stays protected: %d", st)
	}
}

func TestRefusesToListenBeyondLoopbackWithoutCredentials(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		t.Run(addr, func(t *testing.T) {
			s, err := broadcaster.New(broadcaster.Config{Addr: addr, Backend: natslog.Config{DataDir: t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Start(context.Background())
			if err == nil {
				_ = s.Shutdown(context.Background())
				t.Fatal("started on a public address without credentials")
			}
			if !errors.Is(err, broadcaster.ErrInsecure) {
				t.Fatalf("err = %v", err)
			}
			for _, hint := range []string{"--api-keys", "--auth-jwks", "--insecure", "127.0.0.1"} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("the message does not say %q: %v", hint, err)
				}
			}
		})
	}
	// --insecure overrides; credentials make it acceptable
	for name, mod := range map[string]func(*broadcaster.Config){
		"insecure":    func(c *broadcaster.Config) { c.Insecure = true },
		"credentials": func(c *broadcaster.Config) { c.Auth, _, _ = keys(t) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := broadcaster.Config{Addr: "0.0.0.0:0", Backend: natslog.Config{DataDir: t.TempDir()}}
			mod(&cfg)
			s, err := broadcaster.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatalf("start: %v", err)
			}
			_ = s.Shutdown(context.Background())
		})
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	a, reader, revoker := keys(t)
	_, base := startServer(t, func(c *broadcaster.Config) { c.Auth = a; c.RateLimit = 1; c.RateBurst = 3 })
	var last answer
	for i := range 4 {
		last = do(t, "GET", base+"/v1/revocations", "", bearer(revoker)...)
		if i < 3 && last.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, last.status)
		}
	}
	if last.status != http.StatusTooManyRequests {
		t.Fatalf("4th request: %d, want 429", last.status)
	}
	if ra, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", last.header.Get("Retry-After"))
	}
	// the limit is per credential: the reader still has its burst
	if a := do(t, "GET", base+"/v1/revocations", "", bearer(reader)...); a.status != http.StatusOK {
		t.Fatalf("another credential was limited too: %d", a.status)
	}
	// and the stream is never rate limited
	if st, _ := statusOf(t, "GET", base+"/v1/events?last_event_id=now", "", revoker); st != http.StatusOK {
		t.Fatalf("stream: %d", st)
	}
}

func TestSubscriberCap(t *testing.T) {
	t.Parallel()
	s, base := startServer(t, func(c *broadcaster.Config) { c.MaxSubscribers, c.MaxSubscribersPerPrincipal = 2, 2 })
	subscribe(t, base+"/v1/events?last_event_id=now").until(t, events.TypeSynced)
	subscribe(t, base+"/v1/events?last_event_id=now").until(t, events.TypeSynced)
	a := do(t, "GET", base+"/v1/events", "")
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("third subscriber: %d %s", a.status, a.body)
	}
	if metric(t, s, "revocast_broadcaster_subscribers") != 2 {
		t.Fatal("the refused subscriber was counted")
	}
}

// TestSubscriberShare: one credential (or, without one, one address)
// cannot take every stream slot: past its share it is refused, others
// still get a slot, the refusals are counted, and a closed stream gives its
// place back.
func TestSubscriberShare(t *testing.T) {
	t.Parallel()
	a, reader, revoker := keys(t)
	_, base := startServer(t, func(c *broadcaster.Config) {
		c.Auth = a
		c.MaxSubscribers, c.MaxSubscribersPerPrincipal = 4, 2
		// a hung-up stream gives its place back when a heartbeat to it
		// fails: a short interval makes that soon
		c.Heartbeat = 100 * time.Millisecond
	})
	url := base + "/v1/events?last_event_id=now"
	subscribe(t, url, bearer(reader)...).until(t, events.TypeSynced)
	second := subscribe(t, url, bearer(reader)...)
	second.until(t, events.TypeSynced)
	refused := do(t, "GET", url, "", bearer(reader)...)
	if refused.status != http.StatusServiceUnavailable || refused.header.Get("Retry-After") == "" {
		t.Fatalf("a third stream of one key: %d %s", refused.status, refused.body)
	}
	// another credential still gets its slots
	subscribe(t, url, bearer(revoker)...).until(t, events.TypeSynced)
	subscribe(t, url, bearer(revoker)...).until(t, events.TypeSynced)
	if m := do(t, "GET", base+"/metrics", ""); !strings.Contains(string(m.body), `reason="subscriber_share"} 1`) {
		t.Fatalf("the refusal is not counted:\n%s", m.body)
	}
	// a closed stream gives its place back
	second.resp.Body.Close()
	testutil.Eventually(t, testutil.HangLimit, "the reader's place back", func() bool {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestTimeoutsDoNotCutStreams: a stream outlives the header, read and idle
// timeouts, while a client that never finishes its headers is cut off.
func TestTimeoutsDoNotCutStreams(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, func(c *broadcaster.Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.ReadHeaderTimeout = 100 * time.Millisecond
		c.ReadTimeout = 100 * time.Millisecond
		c.IdleTimeout = 100 * time.Millisecond
	})
	sub := subscribe(t, base+"/v1/events?last_event_id=now")
	sub.until(t, events.TypeSynced)
	time.Sleep(300 * time.Millisecond) // let every server timeout pass; nothing to wait for
	rev := post(t, base, `{"jti":"after-timeouts"}`)
	if ev := sub.next(t); ev.ID != rev.ID {
		t.Fatalf("stream after timeouts: %+v", ev)
	}
}

func TestRevokeByTokenDecodeOnlyNeedsRevoker(t *testing.T) {
	t.Parallel()
	a, reader, revoker := keys(t)
	_, base := startServer(t, func(c *broadcaster.Config) { c.Auth = a })
	// an unsigned token is enough when it is only decoded
	tok := unsignedJWT(`{"jti":"rfc7009-1","sub":"dave","exp":` + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + `}`)
	form := url.Values{"token": {tok}}.Encode()
	for _, c := range []struct {
		key  string
		want int
	}{{"", 401}, {reader, 403}} {
		a := doForm(t, base+"/v1/revoke", form, c.key)
		if a.status != c.want {
			t.Fatalf("key %q: %d, want %d", c.key, a.status, c.want)
		}
	}
	if a := doForm(t, base+"/v1/revoke", form, revoker); a.status != http.StatusOK {
		t.Fatalf("revoker: %d %s", a.status, a.body)
	}
	var list listAnswer
	do(t, "GET", base+"/v1/revocations?jti=rfc7009-1", "", bearer(reader)...).decode(t, &list)
	if len(list.Revocations) != 1 {
		t.Fatalf("revoked token not listed: %s", list.Revocations)
	}
	head := headSeq(t, base)
	for _, garbage := range []string{"garbage", "a.b.c", unsignedJWT(`{"jti":"old","exp":1}`), unsignedJWT(`{"nothing":1,"exp":9999999999}`)} {
		if a := doForm(t, base+"/v1/revoke", url.Values{"token": {garbage}}.Encode(), revoker); a.status != http.StatusOK {
			t.Fatalf("garbage %q: %d", garbage, a.status)
		}
	}
	if headSeq(t, base) != head {
		t.Fatal("garbage changed the log")
	}
	if a := doForm(t, base+"/v1/revoke", "", revoker); a.status != http.StatusBadRequest {
		t.Fatalf("missing token: %d", a.status)
	}
}
