package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/jwtverify"
)

// operatorSetup is a broadcaster configured from flags with an API key file
// (a reader and a revoker key) and operator JWTs signed by one Ed25519 key.
type operatorSetup struct {
	base                string
	readerKey, adminKey string
	keysFile            string
	thumbprint          string // of the operators' signing key
	priv                ed25519.PrivateKey
}

func startOperatorBroadcaster(t *testing.T) *operatorSetup {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "operators.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &operatorSetup{priv: priv, keysFile: filepath.Join(dir, "keys")}
	o.readerKey, _ = auth.GenerateKey()
	o.adminKey, _ = auth.GenerateKey()
	o.writeKeys(t, auth.KeyLine("dashboard", auth.RoleReader, o.readerKey), auth.KeyLine("admin", auth.RoleRevoker, o.adminKey))
	if o.thumbprint, err = jwtverify.Thumbprint(pub); err != nil {
		t.Fatal(err)
	}
	sf, err := parseFlags([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--api-keys", o.keysFile,
		"--auth-public-key", pubFile, "--auth-issuer", "https://sso.example", "--auth-audience", "revocast"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg, background, err := sf.config(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	background(ctx)
	s, err := broadcaster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	<-s.Ready()
	o.base = "http://" + s.Addr()
	return o
}

func (o *operatorSetup) writeKeys(t *testing.T, lines ...string) {
	t.Helper()
	tmp := o.keysFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, o.keysFile); err != nil {
		t.Fatal(err)
	}
}

// jwt mints an operator JWT for sub with the revoker role.
func (o *operatorSetup) jwt(t *testing.T, sub, jti string, ttl time.Duration) string {
	t.Helper()
	c := jwt.MapClaims{"iss": "https://sso.example", "aud": "revocast", "sub": sub, "jti": jti,
		"exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Unix(), "revocast_role": "revoker"}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(o.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post posts a revocation with cred and returns the status and the key.
func (o *operatorSetup) post(t *testing.T, cred, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", o.base+"/v1/revocations", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stored struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&stored)
	return resp.StatusCode, stored.Key
}

// TestRevokedOperatorsLoseTheirRights: an operator JWT revoked by jti, by a
// ban of its sub or by its signing key (the key's thumbprint) can no
// longer write, lift its own ban or read, while other credentials still
// can; the broadcaster holds operators to its own revocations.
func TestRevokedOperatorsLoseTheirRights(t *testing.T) {
	o := startOperatorBroadcaster(t)
	ann := o.jwt(t, "op-ann", "ann-1", time.Hour)
	mal := o.jwt(t, "op-mal", "mal-1", time.Hour)
	malOther := o.jwt(t, "op-mal", "mal-2", time.Hour)
	bob := o.jwt(t, "op-bob", "bob-1", time.Hour)
	bob2 := o.jwt(t, "op-bob", "bob-2", time.Hour)

	// A ban of op-mal, posted by op-ann.
	code, banKey := o.post(t, ann, `{"sub":"op-mal","ban":true,"reason":"left the company"}`)
	if code != http.StatusCreated {
		t.Fatalf("ban: %d", code)
	}
	for _, tok := range []string{mal, malOther} {
		testutil.Eventually(t, testutil.HangLimit, "the banned operator's JWT refused", func() bool {
			c, _ := o.post(t, tok, `{"sub":"victim"}`)
			return c == http.StatusUnauthorized
		})
	}
	if got := statusWith(t, "DELETE", o.base+"/v1/revocations/"+banKey, "", mal); got != http.StatusUnauthorized {
		t.Fatalf("the banned operator lifted its own ban: %d", got)
	}
	if got := statusWith(t, "GET", o.base+"/v1/revocations", "", mal); got != http.StatusUnauthorized {
		t.Fatalf("the banned operator still reads: %d", got)
	}

	// One JWT revoked by its jti; another of the same operator still works.
	if code, _ := o.post(t, ann, `{"jti":"bob-1"}`); code != http.StatusCreated {
		t.Fatalf("jti revocation: %d", code)
	}
	testutil.Eventually(t, testutil.HangLimit, "the revoked JWT refused", func() bool {
		c, _ := o.post(t, bob, `{"sub":"x"}`)
		return c == http.StatusUnauthorized
	})
	if code, _ := o.post(t, bob2, `{"sub":"y"}`); code != http.StatusCreated {
		t.Fatalf("another JWT of the same operator: %d", code)
	}

	// The operators' signing key retired by its thumbprint: every JWT it
	// signed is refused, API keys still work and can lift it.
	code, kidKey := o.post(t, ann, `{"kid":"`+o.thumbprint+`"}`)
	if code != http.StatusCreated {
		t.Fatalf("kid revocation: %d", code)
	}
	testutil.Eventually(t, testutil.HangLimit, "JWTs of the retired key refused", func() bool {
		c, _ := o.post(t, ann, `{"sub":"z"}`)
		return c == http.StatusUnauthorized
	})
	if got := statusWith(t, "DELETE", o.base+"/v1/revocations/"+kidKey, "", bob2); got != http.StatusUnauthorized {
		t.Fatalf("a JWT of the retired key lifted the key's revocation: %d", got)
	}
	if got := statusWith(t, "DELETE", o.base+"/v1/revocations/"+kidKey, "", o.adminKey); got != http.StatusOK {
		t.Fatalf("the admin API key could not lift: %d", got)
	}
	testutil.Eventually(t, testutil.HangLimit, "JWTs of the key accepted after the lift", func() bool {
		c, _ := o.post(t, ann, `{"sub":"after-lift"}`)
		return c == http.StatusCreated
	})
}

// TestOperatorStreamEnds: a stream opened with an operator JWT ends when
// the JWT is revoked, and at its exp.
func TestOperatorStreamEnds(t *testing.T) {
	o := startOperatorBroadcaster(t)
	ann := o.jwt(t, "op-ann", "ann-1", time.Hour)
	// tryOpen opens a stream; a status other than 200 comes back instead
	tryOpen := func(cred string) (<-chan error, int) {
		req, _ := http.NewRequest("GET", o.base+"/v1/events?last_event_id=now", nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { resp.Body.Close() })
		ended := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
			}
			ended <- sc.Err()
		}()
		return ended, http.StatusOK
	}
	open := func(cred string) <-chan error {
		ended, status := tryOpen(cred)
		if status != http.StatusOK {
			t.Fatalf("stream: %d", status)
		}
		return ended
	}

	t.Run("revoked", func(t *testing.T) {
		tok := o.jwt(t, "op-watcher", "w-1", time.Hour)
		ended := open(tok)
		if code, _ := o.post(t, ann, `{"sub":"op-watcher","ban":true}`); code != http.StatusCreated {
			t.Fatalf("ban: %d", code)
		}
		select {
		case <-ended: //nolint:errcheck // only the end matters
		case <-time.After(testutil.HangLimit):
			t.Fatalf("the stream of a banned operator is still open after %v", testutil.HangLimit)
		}
	})
	t.Run("expired", func(t *testing.T) {
		// the JWT must outlive opening the stream: on a machine too loaded
		// for that, it is signed again with a longer life
		var exp time.Time
		var ended <-chan error
		for life := 3 * time.Second; ended == nil; life *= 2 {
			if life > testutil.HangLimit {
				t.Fatalf("no stream opened with a JWT valid for %v", life/2)
			}
			exp = time.Now().Add(life)
			var status int
			if ended, status = tryOpen(o.jwt(t, "op-short", fmt.Sprintf("s-%v", life), time.Until(exp))); status != http.StatusOK && status != http.StatusUnauthorized {
				t.Fatalf("stream: %d", status)
			}
		}
		select {
		case <-ended: //nolint:errcheck // only the end matters
			if time.Now().Before(exp.Truncate(time.Second)) {
				t.Fatal("the stream ended before the JWT expired")
			}
		case <-time.After(testutil.HangLimit):
			t.Fatalf("the stream of an expired operator JWT is still open after %v", testutil.HangLimit)
		}
	})
	t.Run("API key streams go on", func(t *testing.T) {
		ended := open(o.readerKey)
		if code, _ := o.post(t, ann, `{"sub":"someone-else","ban":true}`); code != http.StatusCreated {
			t.Fatalf("ban: %d", code)
		}
		// the ban reaches the stream (it is a revoke event): the stream
		// is alive after it
		select {
		case err := <-ended:
			t.Fatalf("an API key's stream ended: %v", err)
		default:
		}
	})
}

// TestAPIKeyFileReload: a key removed from the key file stops working
// without a restart; a broken file keeps the keys in force.
func TestAPIKeyFileReload(t *testing.T) {
	o := startOperatorBroadcaster(t)
	if got := statusWith(t, "GET", o.base+"/v1/revocations", "", o.readerKey); got != http.StatusOK {
		t.Fatalf("reader key before: %d", got)
	}
	o.writeKeys(t, "this line is not a key line")
	// give the watcher time to see the broken file; the keys stay
	newKey, _ := auth.GenerateKey()
	o.writeKeys(t, auth.KeyLine("admin", auth.RoleRevoker, o.adminKey), auth.KeyLine("newcomer", auth.RoleReader, newKey))
	testutil.Eventually(t, testutil.HangLimit, "the withdrawn key refused", func() bool {
		return statusWith(t, "GET", o.base+"/v1/revocations", "", o.readerKey) == http.StatusUnauthorized
	})
	if got := statusWith(t, "GET", o.base+"/v1/revocations", "", newKey); got != http.StatusOK {
		t.Fatalf("the added key: %d", got)
	}
	if got := statusWith(t, "GET", o.base+"/v1/revocations", "", o.adminKey); got != http.StatusOK {
		t.Fatalf("the kept key: %d", got)
	}
}
