package faults

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

// TestNewAndLongRunningAgentsAgree drives real binaries at random: tokens
// and revocations that expire within seconds, a sidecar that runs all
// along, and fresh sidecars started and killed at random steps. Once both
// have applied everything posted, they must give the same answer for every
// token: an agent started at any moment decides exactly like one that ran
// all along (the expiry grace keeps a revocation in the full state for as
// long as any agent's leeway still admits its token). The seed is logged;
// REVOCAST_AGREEMENT_SEED replays one.
func TestNewAndLongRunningAgentsAgree(t *testing.T) {
	skipShort(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REVOCAST_AGREEMENT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("REVOCAST_AGREEMENT_SEED: %v", err)
		}
	}
	t.Logf("seed %d (REVOCAST_AGREEMENT_SEED=%d replays it)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, seed))

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	// A short grace and leeway so that tokens and revocations pass through
	// every phase (live, expired within the leeway, gone) during the test.
	const leeway = 4 * time.Second
	b := singleNode(t)
	b.args = []string{"--expiry-grace", "10s"}
	b.start(t)
	b.waitReady(t)
	startAgent := func(name string) *testutil.Process {
		return testutil.Start(t, "agent", "/readyz", "--broadcaster", b.url(), "--public-key", keyFile,
			"--addr", "127.0.0.1:0", "--name", name, "--leeway", leeway.String())
	}
	long := startAgent("long-running")

	type token struct {
		raw, jti, sub string
		exp           time.Time
	}
	var tokens []token
	subjects := []string{"alice", "bob", "carol"}
	mint := func() {
		now := time.Now()
		tok := token{jti: fmt.Sprintf("t-%d", len(tokens)), sub: subjects[rng.IntN(len(subjects))],
			exp: now.Add(time.Duration(1+rng.IntN(6)) * time.Second)}
		raw, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"jti": tok.jti, "sub": tok.sub, "iat": now.Add(-time.Duration(rng.IntN(3)) * time.Second).Unix(), "exp": tok.exp.Unix(),
		}).SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		tok.raw = raw
		tokens = append(tokens, tok)
	}

	var head events.EventID
	api := b.api(t)
	revoke := func() {
		tok := tokens[rng.IntN(len(tokens))]
		// expires_at a little after the token's exp: the window in which
		// a restarted agent used to admit it. Times in whole seconds, as
		// the tokens' claims are.
		rev := events.Revocation{Reason: "agreement test",
			ExpiresAt: events.Time{Time: time.Unix(tok.exp.Add(time.Duration(rng.IntN(3))*time.Second).Unix(), 0)}}
		if rng.IntN(3) == 0 {
			rev.Sub, rev.IssuedBefore = tok.sub, events.Time{Time: time.Unix(time.Now().Unix(), 0)}
		} else {
			rev.JTI = tok.jti
		}
		st, err := api.Revoke(t.Context(), rev, client.WriteOptions{})
		if err != nil {
			t.Fatalf("revoke %+v: %v", rev, err)
		}
		if st.ID == "" {
			return // already expired beyond the grace: not stored
		}
		id, err := events.ParseEventID(st.ID)
		if err != nil {
			t.Fatalf("revoke %+v: id %q: %v", rev, st.ID, err)
		}
		head = id
	}
	// applied waits until the named agents are fresh and have applied head.
	applied := func(names ...string) {
		testutil.Eventually(t, 2*time.Minute, fmt.Sprintf("%v applied %d", names, head.Seq), func() bool {
			fleet := fleetOf(t, b)
			for _, n := range names {
				a, ok := fleet[n]
				if !ok || !a.Connected || !a.Fresh {
					return false
				}
				if head.Seq == 0 {
					continue
				}
				id, err := events.ParseEventID(a.Applied)
				if err != nil || id.Seq < head.Seq {
					return false
				}
			}
			return true
		})
	}
	// answer asks an agent sidecar's /auth, not the broadcaster's API: plain
	// HTTP, the status code is the answer.
	answer := func(p *testutil.Process, raw string) int {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/auth", nil)
		req.Header.Set("Authorization", "Bearer "+raw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	var fresh *testutil.Process
	freshName := ""
	compared, inWindow, started := 0, 0, 0
	for step := range 24 {
		for range 1 + rng.IntN(2) {
			mint()
		}
		for range rng.IntN(3) {
			revoke()
		}
		if fresh != nil && rng.IntN(3) == 0 {
			fresh.Kill() // killed at a random moment, mid-stream or idle
			fresh = nil
		}
		if fresh == nil || rng.IntN(2) == 0 {
			if fresh != nil {
				fresh.Kill()
			}
			started++
			freshName = fmt.Sprintf("fresh-%d", started)
			fresh = startAgent(freshName)
		}
		applied("long-running", freshName)
		for _, tok := range tokens {
			before := answer(long, tok.raw)
			got := answer(fresh, tok.raw)
			after := answer(long, tok.raw)
			if before != after {
				continue // the token crossed exp + leeway meanwhile: no single answer
			}
			compared++
			if now := time.Now(); now.After(tok.exp) && now.Before(tok.exp.Add(leeway)) {
				inWindow++
			}
			if got != before {
				t.Fatalf("step %d: token %s (sub %s, exp %s ago): the long-running agent answers %d, %s started now answers %d",
					step, tok.jti, tok.sub, time.Since(tok.exp).Round(time.Millisecond), before, freshName, got)
			}
		}
	}
	t.Logf("%d answers compared over %d fresh agents, %d of them for tokens past exp within the leeway", compared, started, inWindow)
	if compared == 0 {
		t.Fatal("nothing compared")
	}
}
