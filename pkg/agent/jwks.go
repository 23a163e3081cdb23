package agent

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
)

// jwksSource keeps an in-memory snapshot of a JWKS and refreshes it in the
// background.
//
// Why not keyfunc.NewDefaultCtx: its storage (jwkset's HTTP client with
// RefreshUnknownKID) refreshes inside KeyRead when a kid is unknown, so the
// jwt.Keyfunc call waits on the rate limiter and the HTTP request: network
// I/O on the check path. And a keyfunc hands golang-jwt the whole set for a
// kid-less token, so nobody learns which key verified it, which a kid
// revocation must know. Here every refresh builds a fresh jwkset storage
// (one GET, no refresh goroutine), keeps the usable keys with their names
// (jwksSnapshot), and publishes them with an atomic pointer swap; the check
// path reads the snapshot, a memory lookup, and on a miss only signals the
// refresher.
type jwksSource struct {
	url      string
	client   *http.Client
	log      *slog.Logger
	interval time.Duration
	minGap   time.Duration
	timeout  time.Duration
	now      func() time.Time
	onChange func() // a key set was published: purge the verified-token cache, maybe become ready

	current atomic.Pointer[jwksSnapshot]
	trigger chan struct{}

	refreshes atomic.Uint64 // fetches that succeeded
	changes   atomic.Uint64 // of which changed the key set
	failures  atomic.Uint64
}

// jwksSnapshot is one published key set: the keys that may verify tokens,
// by kid and all of them (for kid-less tokens), each with its names.
type jwksSnapshot struct {
	byKid       map[string][]*verifyKey
	kidsOf      map[string][]string // kids by thumbprint: every name of a key
	all         []*verifyKey
	fingerprint [sha256.Size]byte
	keys        int // keys in the set, usable or not
}

// newJWKSSnapshot keeps the JWKs that meet the rules of PEM keys (see
// checkKey), with "use" absent or "sig" and an "alg", when given, that is
// known and fits the key; it logs each key it keeps with its thumbprint and
// each it skips with the reason.
func newJWKSSnapshot(jwks []jwkset.JWK, log *slog.Logger) *jwksSnapshot {
	snap := &jwksSnapshot{byKid: map[string][]*verifyKey{}, kidsOf: map[string][]string{}, keys: len(jwks)}
	for _, j := range jwks {
		m := j.Marshal()
		k, err := jwkVerifyKey(j.Key(), m)
		if err != nil {
			log.Warn("JWKS key skipped", "kid", m.KID, "kty", string(m.KTY), "reason", err)
			continue
		}
		log.Info("JWKS key loaded", "kid", m.KID, "type", keyType(k.key), "alg", k.alg, "thumbprint", k.thumbprint)
		snap.all = append(snap.all, k)
		if m.KID != "" {
			snap.byKid[m.KID] = append(snap.byKid[m.KID], k)
			if !slices.Contains(snap.kidsOf[k.thumbprint], m.KID) {
				snap.kidsOf[k.thumbprint] = append(snap.kidsOf[k.thumbprint], m.KID)
			}
		}
	}
	return snap
}

func jwkVerifyKey(key any, m jwkset.JWKMarshal) (*verifyKey, error) {
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, fmt.Errorf("use %q: only signature keys verify tokens", string(m.USE))
	}
	switch k := key.(type) {
	case []byte:
		return nil, errors.New("symmetric keys do not belong in a published key set")
	case crypto.Signer: // a private JWK: its public half
		key = k.Public()
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	alg := string(m.ALG)
	k, err := newVerifyKey(key, m.KID, alg)
	if err != nil {
		return nil, err
	}
	if alg != "" && (!slices.Contains(knownAlgs, alg) || !k.verifies(alg)) {
		return nil, fmt.Errorf("alg %q does not fit the key", alg)
	}
	return k, nil
}

func newJWKSSource(c *config, log *slog.Logger, onChange func()) *jwksSource {
	return &jwksSource{
		url:      c.jwksURL,
		client:   c.httpClient,
		log:      log.With("jwks", c.jwksURL),
		interval: c.jwksInterval,
		minGap:   c.jwksMin,
		timeout:  c.jwksTimeout,
		now:      time.Now, // rate limiting is about real time, not the token clock
		onChange: onChange,
		trigger:  make(chan struct{}, 1),
	}
}

// requestRefresh asks the refresher for a fetch without waiting for it.
func (j *jwksSource) requestRefresh() {
	select {
	case j.trigger <- struct{}{}:
	default: // one is pending already
	}
}

// fetch gets the key set once and publishes it if it changed.
func (j *jwksSource) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	client := j.client
	if client == nil {
		client = http.DefaultClient
	}
	store, err := jwkset.NewStorageFromHTTP(j.url, jwkset.HTTPClientStorageOptions{
		Client:      client,
		Ctx:         ctx,
		HTTPTimeout: j.timeout,
		// RefreshInterval 0: one request now, no goroutine of its own.
	})
	if err != nil {
		j.failures.Add(1)
		return err
	}
	all, err := store.KeyReadAll(ctx)
	if err != nil {
		j.failures.Add(1)
		return err
	}
	pub, err := store.JSONPublic(ctx)
	if err != nil {
		j.failures.Add(1)
		return fmt.Errorf("encode key set: %w", err)
	}
	j.refreshes.Add(1)
	fingerprint := sha256.Sum256(pub)
	old := j.current.Load()
	if old != nil && old.fingerprint == fingerprint {
		return nil
	}
	snap := newJWKSSnapshot(all, j.log)
	snap.fingerprint = fingerprint
	j.current.Store(snap)
	j.changes.Add(1)
	if old != nil {
		j.log.Info("JWKS changed", "keys", snap.keys)
	} else {
		j.log.Info("JWKS loaded", "keys", snap.keys)
	}
	if j.onChange != nil {
		j.onChange()
	}
	return nil
}

// run fetches the key set now, then periodically and on request, at most
// once per minGap, and retries a failed fetch with backoff (1s doubling to
// a minute), until ctx ends.
func (j *jwksSource) run(ctx context.Context) {
	periodic := time.NewTicker(j.interval)
	defer periodic.Stop()
	wait := time.NewTimer(time.Hour)
	wait.Stop() // armed only while a refresh is scheduled
	defer wait.Stop()
	pending := false
	schedule := func(d time.Duration) {
		if !pending {
			pending = true
			wait.Reset(d)
		}
	}
	const maxRetry = time.Minute
	retry := time.Second
	var last time.Time
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-periodic.C:
			case <-j.trigger:
				if gap := j.now().Sub(last); gap < j.minGap {
					schedule(j.minGap - gap)
					continue
				}
			case <-wait.C:
				pending = false
			}
		}
		if pending {
			wait.Stop()
			pending = false
		}
		last = j.now()
		err := j.fetch(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			j.log.Warn("JWKS fetch failed; keeping the previous key set", "err", err, "retry_in", retry)
			schedule(retry)
			retry = min(retry*2, maxRetry)
		default:
			retry = time.Second
		}
	}
}
