package agent

import (
	"crypto"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/revocast/revocast/pkg/jwtverify"
)

// Defaults of New.
const (
	// DefaultLeeway is the clock skew allowed when checking exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxStaleness is how long the stream may stay silent (no event,
	// no heartbeat) before the agent is stale: four heartbeats at the
	// broadcaster's default of 15s.
	DefaultMaxStaleness = 60 * time.Second
	// DefaultSweepInterval is how often expired revocations are dropped
	// from memory. Check ignores them as soon as they expire either way.
	DefaultSweepInterval = 30 * time.Second
	// DefaultJWKSRefreshInterval is how often a JWKS is fetched again.
	DefaultJWKSRefreshInterval = 15 * time.Minute
	// DefaultJWKSMinRefreshInterval is the shortest time between two JWKS
	// fetches, however many tokens with unknown key IDs arrive.
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	// DefaultJWKSTimeout bounds one JWKS fetch.
	DefaultJWKSTimeout = 10 * time.Second
	// DefaultMaxBackoff caps the delay between reconnection attempts. The
	// cap never exceeds a quarter of the maximum staleness, whatever
	// WithReconnectBackoff says: reconnection alone never makes the agent
	// stale.
	DefaultMaxBackoff = 15 * time.Second
	// MinHMACSecretLength is the shortest HMAC secret accepted: RFC 7518
	// section 3.2 requires a key at least as long as the hash (HS256).
	MinHMACSecretLength = 32
	// MinRSABits is the smallest RSA modulus accepted, from a PEM file or a
	// JWKS alike.
	MinRSABits = jwtverify.MinRSABits
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
	algs          []string
	keys          []crypto.PublicKey
	keyErrs       []error
	hmacSecret    []byte
	jwksURL       string
	jwksInterval  time.Duration
	jwksMin       time.Duration
	jwksTimeout   time.Duration
	issuers       []string
	audiences     []string
	leeway        time.Duration
	maxLifetime   time.Duration
	requireIAT    bool
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

// Option configures New.
type Option func(*config)

// WithLogger sets where the agent logs (connections, resets, staleness,
// JWKS refreshes). Default: nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithHTTPClient sets the HTTP client used for the event stream and the
// JWKS, for example one with a custom TLS configuration. It must have no
// overall Timeout, which would cut the stream; the default client bounds the
// dial, TLS handshake and response headers instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) {
		if hc != nil {
			c.httpClient = hc
		}
	}
}

// WithRequestHook lets the caller change every request to the broadcaster
// before it is sent (for example to add a freshly minted credential).
func WithRequestHook(f func(*http.Request)) Option {
	return func(c *config) { c.requestHook = f }
}

// WithBearerToken sends "Authorization: Bearer <token>" to the broadcaster.
func WithBearerToken(token string) Option {
	return func(c *config) { c.bearer = token }
}

// WithAlgorithms sets the JWS algorithms accepted (required): any of HS256,
// HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
// ES512 and EdDSA. "none" is always refused. HS* needs WithHMACSecret; the
// others need a public key of their kind or a JWKS.
func WithAlgorithms(algs ...string) Option {
	return func(c *config) { c.algs = append(c.algs, algs...) }
}

// WithPublicKeys adds trusted public keys: *rsa.PublicKey,
// *ecdsa.PublicKey or ed25519.PublicKey. They verify tokens whatever
// their kid.
func WithPublicKeys(keys ...crypto.PublicKey) Option {
	return func(c *config) { c.keys = append(c.keys, keys...) }
}

// WithPublicKeyPEM adds the public keys in PEM data: PUBLIC KEY (PKIX:
// RSA, ECDSA, Ed25519), RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks.
// An error (New returns it) for data without any, or with a private key.
func WithPublicKeyPEM(data []byte) Option {
	return func(c *config) {
		keys, err := ParsePublicKeysPEM(data)
		if err != nil {
			c.keyErrs = append(c.keyErrs, err)
			return
		}
		c.keys = append(c.keys, keys...)
	}
}

// WithPublicKeyFile adds the public keys in a PEM file (see
// WithPublicKeyPEM).
func WithPublicKeyFile(path string) Option {
	return func(c *config) {
		data, err := os.ReadFile(path)
		if err != nil {
			c.keyErrs = append(c.keyErrs, errorf("public key file: %v", err))
			return
		}
		keys, err := ParsePublicKeysPEM(data)
		if err != nil {
			c.keyErrs = append(c.keyErrs, errorf("public key file %s: %v", path, err))
			return
		}
		c.keys = append(c.keys, keys...)
	}
}

// WithHMACSecret sets the secret of HS256/HS384/HS512 tokens: at least
// MinHMACSecretLength bytes.
func WithHMACSecret(secret []byte) Option {
	return func(c *config) { c.hmacSecret = slices.Clone(secret) }
}

// WithJWKS verifies tokens with the keys of a JSON Web Key Set, selected by
// the token's kid. The set is fetched when Run starts and then every
// DefaultJWKSRefreshInterval (see WithJWKSRefresh), always in the
// background: a token whose kid is unknown is refused at once (ErrInvalid)
// and triggers a rate-limited refresh, so a rotated-in key is accepted
// shortly after its first token is seen.
func WithJWKS(url string) Option {
	return func(c *config) { c.jwksURL = url }
}

// WithJWKSRefresh sets the periodic JWKS refresh interval and the shortest
// time between two fetches (which bounds the fetches that tokens with
// unknown kids can cause). Non-positive values keep the defaults.
func WithJWKSRefresh(interval, minInterval time.Duration) Option {
	return func(c *config) {
		if interval > 0 {
			c.jwksInterval = interval
		}
		if minInterval > 0 {
			c.jwksMin = minInterval
		}
	}
}

// WithIssuers sets the accepted iss values; a token must carry one of them.
// Without it, any issuer is accepted.
func WithIssuers(iss ...string) Option {
	return func(c *config) { c.issuers = append(c.issuers, iss...) }
}

// WithAudiences sets the accepted aud values; a token's aud must contain at
// least one of them. Without it, aud is not checked.
func WithAudiences(aud ...string) Option {
	return func(c *config) { c.audiences = append(c.audiences, aud...) }
}

// WithLeeway sets the clock skew allowed for exp, nbf and iat (default
// DefaultLeeway). Revocations are kept past their expires_at for this leeway
// plus a minute, but never longer than the broadcaster's expiry grace G
// (events.DefaultExpiryGrace), so that a token the agent still accepts is
// never forgotten by the denylist first, and an agent started later, which
// receives revocations until expires_at + G, decides alike. The leeway must
// stay below G: Run returns ErrLeewayExceedsGrace when the broadcaster
// announces a G that does not cover it.
func WithLeeway(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.leeway = d
		}
	}
}

// WithRequireIssuedAt refuses tokens without iat. Without it such tokens are
// accepted, and a subject logout or tenant logout (which applies to tokens
// issued before a time) denies them as long as it lives, since nothing shows
// they were issued after it.
func WithRequireIssuedAt(require bool) Option {
	return func(c *config) { c.requireIAT = require }
}

// WithMaxStaleness sets how long the stream may be silent before the agent
// is stale (default DefaultMaxStaleness). It must exceed the broadcaster's
// heartbeat interval. The stream connection is also dropped and retried
// after this long without a byte.
func WithMaxStaleness(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.maxStaleness = d
		}
	}
}

// WithStalePolicy sets what Check does while stale (default StaleClosed).
func WithStalePolicy(p StalePolicy) Option {
	return func(c *config) { c.stalePolicy = p }
}

// WithDenylistCapacity sets how many revocations are kept exactly; more
// spill into a compact tier that still denies them (see cache.Denylist).
// Default cache.DefaultCapacity.
func WithDenylistCapacity(n int) Option {
	return func(c *config) { c.denyCapacity = n }
}

// WithVerifiedCacheCapacity sets how many verified tokens are remembered so
// that a repeated token skips signature verification (default
// cache.DefaultVerifiedCapacity). A negative n disables the cache: every
// check verifies the signature.
func WithVerifiedCacheCapacity(n int) Option {
	return func(c *config) { c.cacheCapacity = n }
}

// WithClock sets the clock used for token times, revocation expiry and
// staleness. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithSweepInterval sets how often expired revocations are dropped from
// memory (default DefaultSweepInterval).
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.sweepInterval = d
		}
	}
}

// WithReconnectBackoff sets the first reconnection delay (used until the
// broadcaster advertises its own with "retry:") and the cap of the
// exponential backoff (default DefaultMaxBackoff). Non-positive values keep
// the defaults.
func WithReconnectBackoff(initial, maxDelay time.Duration) Option {
	return func(c *config) {
		if initial > 0 {
			c.initBackoff = initial
		}
		if maxDelay > 0 {
			c.maxBackoff = maxDelay
		}
	}
}

// WithMaxTokenLifetime lowers L, the longest token lifetime the agent
// admits. The agent refuses a token whose exp − iat (exp − now without iat)
// exceeds L: a revocation's default expiry assumes no token lives longer,
// so a longer-lived token would outlive the revocations meant for it. L is
// what the broadcaster announces in its synced event
// (events.DefaultMaxTokenLifetime until then, or from a broadcaster that
// announces none); this option can only lower it. Zero or less: no lowering.
func WithMaxTokenLifetime(d time.Duration) Option {
	return func(c *config) { c.maxLifetime = d }
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
