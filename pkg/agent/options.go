package agent

import (
	"crypto"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/revocast/revocast/pkg/jwtverify"
)

// Defaults of New.
const (
	// DefaultLeeway is the clock skew allowed when checking exp, nbf and iat.
	DefaultLeeway = jwtverify.DefaultLeeway
	// DefaultMaxStaleness is how long the stream may stay silent (no event,
	// no heartbeat) before the agent is stale: four heartbeats at the
	// broadcaster's default of 15s.
	DefaultMaxStaleness = 60 * time.Second
	// DefaultSweepInterval is how often expired revocations are dropped
	// from memory. Check ignores them as soon as they expire either way.
	DefaultSweepInterval = 30 * time.Second
	// DefaultJWKSRefreshInterval is how often a JWKS is fetched again.
	DefaultJWKSRefreshInterval = jwtverify.DefaultJWKSRefreshInterval
	// DefaultJWKSMinRefreshInterval is the shortest time between two JWKS
	// fetches, however many tokens with unknown key IDs arrive.
	DefaultJWKSMinRefreshInterval = jwtverify.DefaultJWKSMinRefreshInterval
	// DefaultJWKSTimeout bounds one JWKS fetch.
	DefaultJWKSTimeout = jwtverify.DefaultJWKSTimeout
	// DefaultMaxBackoff caps the delay between reconnection attempts. The
	// cap never exceeds a quarter of the maximum staleness, whatever
	// WithReconnectBackoff says: reconnection alone never makes the agent
	// stale.
	DefaultMaxBackoff = 15 * time.Second
	// MinHMACSecretLength is the shortest HMAC secret accepted: RFC 7518
	// section 3.2 requires a key at least as long as the hash (HS256).
	MinHMACSecretLength = jwtverify.MinHMACSecretLength
	// MinRSABits is the smallest RSA modulus accepted, from a PEM file or a
	// JWKS alike.
	MinRSABits = jwtverify.MinRSABits
	// MinMaxStaleness is the shortest maximum staleness accepted (see
	// WithMaxStaleness).
	MinMaxStaleness = 100 * time.Millisecond
	// MaxTokenLength is the longest raw token Check looks at.
	MaxTokenLength = 16 << 10
)

// StalePolicy says what Check does while the agent is stale.
type StalePolicy int

const (
	// StaleClosed (the default) refuses every token with ErrStale while
	// the agent is stale or has not synced yet: a revocation it missed
	// cannot admit a token. The middleware answers 503.
	StaleClosed StalePolicy = iota
	// StaleOpen admits tokens that verify and are not on the (possibly
	// outdated) denylist: availability over revocation. Each such check is
	// counted, and the agent logs once per staleness episode.
	StaleOpen
)

// String returns "closed" or "open".
func (p StalePolicy) String() string {
	if p == StaleOpen {
		return "open"
	}
	return "closed"
}

// ParseStalePolicy parses "closed" or "open".
func ParseStalePolicy(s string) (StalePolicy, error) {
	switch s {
	case "closed":
		return StaleClosed, nil
	case "open":
		return StaleOpen, nil
	}
	return StaleClosed, errorf("stale policy %q: want closed or open", s)
}

type config struct {
	logger        *slog.Logger
	httpClient    *http.Client
	requestHook   func(*http.Request)
	bearer        string
	verify        []jwtverify.Option // keys, algorithms, claims: see jwtverify.New
	jwksURL       string             // also in verify; kept for the plain-HTTP warning
	leeway        time.Duration      // also in verify; the agent's retention depends on it
	maxLifetime   time.Duration
	maxStaleness  time.Duration
	stalePolicy   StalePolicy
	denyCapacity  int
	cacheCapacity int
	now           func() time.Time
	sweepInterval time.Duration
	initBackoff   time.Duration
	maxBackoff    time.Duration
	// receipts
	name           string
	reportInterval time.Duration
}

// Option configures New (and NewVerifier). An option given a value it
// does not accept makes New return an error matching ErrInvalidOption;
// no value is silently replaced by a default.
type Option func(*config) error

// ErrInvalidOption is matched (errors.Is) by the errors of New and
// NewVerifier for an option given a value it does not accept; it is
// jwtverify.ErrInvalidOption.
var ErrInvalidOption = jwtverify.ErrInvalidOption

// optionError says what is wrong with an option's value and matches
// ErrInvalidOption.
type optionError struct{ msg string }

func (e *optionError) Error() string { return e.msg }

func (e *optionError) Is(target error) bool { return target == ErrInvalidOption }

// optionErr is the error of an option given a value it does not accept.
func optionErr(format string, args ...any) error {
	return &optionError{fmt.Sprintf(format, args...)}
}

// Validate applies opts to the defaults and returns the errors of the
// options themselves (not those New finds by combining them, such as a
// missing key source or algorithm). cmd/agent checks each flag with it.
func Validate(opts ...Option) error {
	_, err := newConfig(opts)
	return err
}

// verifyOption passes o on to the verifier (see jwtverify.New).
func verifyOption(o jwtverify.Option) Option {
	return func(c *config) error {
		c.verify = append(c.verify, o)
		return nil
	}
}

// WithLogger sets where the agent logs (connections, resets, staleness,
// JWKS refreshes). Default: nothing is logged. nil is an error.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		c.verify = append(c.verify, jwtverify.WithLogger(l)) // nil: an error
		return nil
	}
}

// WithHTTPClient sets the HTTP client used for the event stream and the
// JWKS, for example one with a custom TLS configuration. It must have no
// overall Timeout, which would cut the stream; the default client bounds the
// dial, TLS handshake and response headers instead. nil is an error.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		c.httpClient = hc
		c.verify = append(c.verify, jwtverify.WithHTTPClient(hc)) // nil: an error
		return nil
	}
}

// WithRequestHook lets the caller change every request to the broadcaster
// before it is sent (for example to add a freshly minted credential).
func WithRequestHook(f func(*http.Request)) Option {
	return func(c *config) error {
		c.requestHook = f
		return nil
	}
}

// WithBearerToken sends "Authorization: Bearer <token>" to the broadcaster.
func WithBearerToken(token string) Option {
	return func(c *config) error {
		c.bearer = token
		return nil
	}
}

// WithAlgorithms sets the JWS algorithms accepted (required): any of HS256,
// HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
// ES512 and EdDSA. "none" is always refused. HS* needs WithHMACSecret; the
// others need a public key of their kind or a JWKS.
func WithAlgorithms(algs ...string) Option {
	return verifyOption(jwtverify.WithAlgorithms(algs...))
}

// WithPublicKeys adds trusted public keys: *rsa.PublicKey,
// *ecdsa.PublicKey or ed25519.PublicKey. They verify tokens whatever
// their kid.
func WithPublicKeys(keys ...crypto.PublicKey) Option {
	return verifyOption(jwtverify.WithPublicKeys(keys...))
}

// WithPublicKeyPEM adds the public keys in PEM data: PUBLIC KEY (PKIX:
// RSA, ECDSA, Ed25519), RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks.
// An error (New returns it) for data without any, or with a private key.
func WithPublicKeyPEM(data []byte) Option {
	return verifyOption(jwtverify.WithPublicKeyPEM(data))
}

// WithPublicKeyFile adds the public keys in a PEM file (see
// WithPublicKeyPEM).
func WithPublicKeyFile(path string) Option {
	return verifyOption(jwtverify.WithPublicKeyFile(path))
}

// WithHMACSecret sets the secret of HS256/HS384/HS512 tokens: at least
// MinHMACSecretLength bytes, or New returns an error.
func WithHMACSecret(secret []byte) Option {
	return verifyOption(jwtverify.WithHMACSecret(secret))
}

// WithJWKS verifies tokens with the keys of a JSON Web Key Set, selected by
// the token's kid. The set is fetched when Run starts and then every
// DefaultJWKSRefreshInterval (see WithJWKSRefresh), always in the
// background: a token whose kid is unknown is refused at once (ErrInvalid)
// and triggers a rate-limited refresh, so a rotated-in key is accepted
// shortly after its first token is seen.
func WithJWKS(url string) Option {
	return func(c *config) error {
		c.jwksURL = url
		c.verify = append(c.verify, jwtverify.WithJWKS(url))
		return nil
	}
}

// WithJWKSRefresh sets the periodic JWKS refresh interval and the shortest
// time between two fetches (which bounds the fetches that tokens with
// unknown kids can cause). Both must be positive and minInterval at most
// interval, or New returns an error (they used to fall back to the
// defaults silently).
func WithJWKSRefresh(interval, minInterval time.Duration) Option {
	return verifyOption(jwtverify.WithJWKSRefresh(interval, minInterval))
}

// WithIssuers sets the accepted iss values; a token must carry one of them.
// Without it, any issuer is accepted.
func WithIssuers(iss ...string) Option {
	return verifyOption(jwtverify.WithIssuers(iss...))
}

// WithAudiences sets the accepted aud values; a token's aud must contain at
// least one of them. Without it, aud is not checked.
func WithAudiences(aud ...string) Option {
	return verifyOption(jwtverify.WithAudiences(aud...))
}

// WithLeeway sets the clock skew allowed for exp, nbf and iat (default
// DefaultLeeway). Revocations are kept past their expires_at for this leeway
// plus a minute, but never longer than the broadcaster's expiry grace G
// (events.DefaultExpiryGrace), so that a token the agent still accepts is
// never forgotten by the denylist first, and an agent started later, which
// receives revocations until expires_at + G, decides alike. The leeway must
// stay below G: Run returns ErrLeewayExceedsGrace when the broadcaster
// announces a G that does not cover it. 0 allows no skew; a negative
// leeway is an error (it used to be ignored).
func WithLeeway(d time.Duration) Option {
	return func(c *config) error {
		if err := jwtverify.Validate(jwtverify.WithLeeway(d)); err != nil {
			return err
		}
		c.leeway = d
		c.verify = append(c.verify, jwtverify.WithLeeway(d))
		return nil
	}
}

// WithRequireIssuedAt refuses tokens without iat. Without it such tokens are
// accepted, and a subject logout or tenant logout (which applies to tokens
// issued before a time) denies them as long as it lives, since nothing shows
// they were issued after it.
func WithRequireIssuedAt(require bool) Option {
	return verifyOption(jwtverify.WithRequireIssuedAt(require))
}

// WithMaxStaleness sets how long the stream may be silent before the agent
// is stale (default DefaultMaxStaleness). It must be at least
// MinMaxStaleness (an error otherwise) and should exceed the broadcaster's
// heartbeat interval. The stream connection is also dropped and retried
// after this long without a byte.
func WithMaxStaleness(d time.Duration) Option {
	return func(c *config) error {
		if d < MinMaxStaleness {
			return optionErr("max staleness %v: at least %v (and above the broadcaster's heartbeat)", d, MinMaxStaleness)
		}
		c.maxStaleness = d
		return nil
	}
}

// WithStalePolicy sets what Check does while stale (default StaleClosed);
// a value other than StaleClosed and StaleOpen is an error.
func WithStalePolicy(p StalePolicy) Option {
	return func(c *config) error {
		if p != StaleClosed && p != StaleOpen {
			return optionErr("stale policy %d: want StaleClosed or StaleOpen", int(p))
		}
		c.stalePolicy = p
		return nil
	}
}

// WithDenylistCapacity sets how many revocations are kept exactly; more
// spill into a compact tier that still denies them (see cache.Denylist).
// Default cache.DefaultCapacity; n below 1 is an error (the denylist
// cannot be disabled).
func WithDenylistCapacity(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return optionErr("denylist capacity %d: at least 1", n)
		}
		c.denyCapacity = n
		return nil
	}
}

// WithVerifiedCacheCapacity sets how many verified tokens are remembered so
// that a repeated token skips signature verification (default
// cache.DefaultVerifiedCapacity). 0 disables the cache: every check
// verifies the signature. A negative n is an error (it used to mean
// "disabled" while 0 meant "the default").
func WithVerifiedCacheCapacity(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return optionErr("verified-token cache capacity %d: 0 disables it, negative values are not accepted", n)
		}
		c.cacheCapacity = n
		return nil
	}
}

// WithClock sets the clock used for token times, revocation expiry and
// staleness. Default time.Now; nil is an error.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if err := jwtverify.Validate(jwtverify.WithClock(now)); err != nil {
			return err
		}
		c.now = now
		c.verify = append(c.verify, jwtverify.WithClock(now))
		return nil
	}
}

// WithSweepInterval sets how often expired revocations are dropped from
// memory (default DefaultSweepInterval); it must be positive.
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return optionErr("sweep interval %v: must be positive", d)
		}
		c.sweepInterval = d
		return nil
	}
}

// WithReconnectBackoff sets the first reconnection delay (used until the
// broadcaster advertises its own with "retry:", default 1s) and the cap of
// the exponential backoff (default DefaultMaxBackoff). Both must be
// positive, an error otherwise. Every delay is further capped at a quarter
// of the maximum staleness, so reconnection alone never makes the agent
// stale.
func WithReconnectBackoff(initial, maxDelay time.Duration) Option {
	return func(c *config) error {
		if initial <= 0 || maxDelay <= 0 {
			return optionErr("reconnect backoff %v, %v: both must be positive", initial, maxDelay)
		}
		c.initBackoff, c.maxBackoff = initial, maxDelay
		return nil
	}
}

// WithMaxTokenLifetime lowers L, the longest token lifetime the agent
// admits. The agent refuses a token whose exp − iat (exp − now without iat)
// exceeds L: a revocation's default expiry assumes no token lives longer,
// so a longer-lived token would outlive the revocations meant for it. L is
// what the broadcaster announces in its synced event
// (events.DefaultMaxTokenLifetime until then, or from a broadcaster that
// announces none); this option can only lower it. 0 (the default) keeps
// the broadcaster's L; a negative d, or one below a second (L counts whole
// seconds), is an error.
func WithMaxTokenLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || (d > 0 && d < time.Second) {
			return optionErr("max token lifetime %v: 0 (the broadcaster's) or at least 1s", d)
		}
		c.maxLifetime = d
		return nil
	}
}

// reconnectBackoff is the first reconnection delay and the cap of every
// delay (backoff, retry:, Retry-After): at most a quarter of maxStaleness.
func (c *config) reconnectBackoff() (initial, maxDelay time.Duration) {
	maxDelay = min(c.maxBackoff, c.maxStaleness/4)
	initial = c.initBackoff
	if initial <= 0 {
		initial = time.Second
	}
	return min(initial, maxDelay), maxDelay
}
