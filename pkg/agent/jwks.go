package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
)

// jwksSource keeps an in-memory snapshot of a JWKS and refreshes it in the
// background.
//
// Why not keyfunc.NewDefaultCtx: its storage (jwkset's HTTP client with
// RefreshUnknownKID) refreshes inside KeyRead when a kid is unknown, so the
// jwt.Keyfunc call waits on the rate limiter and the HTTP request: network
// I/O on the check path. Here every refresh builds a fresh jwkset storage
// (one GET, no refresh goroutine), wraps it with keyfunc.New, and publishes
// it with an atomic pointer swap; the check path reads the snapshot, whose
// KeyRead is a memory lookup, and on a miss only signals the refresher.
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

type jwksSnapshot struct {
	kf          keyfunc.Keyfunc
	fingerprint [sha256.Size]byte
	keys        int
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
	kf, err := keyfunc.New(keyfunc.Options{Ctx: context.Background(), Storage: store})
	if err != nil {
		j.failures.Add(1)
		return err
	}
	j.refreshes.Add(1)
	snap := &jwksSnapshot{kf: kf, fingerprint: sha256.Sum256(pub), keys: len(all)}
	old := j.current.Load()
	if old != nil && old.fingerprint == snap.fingerprint {
		return nil
	}
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

func isNotFound(err error) bool { return errors.Is(err, jwkset.ErrKeyNotFound) }
