package jwtverify

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"
)

// Defaults of New.
const (
	// DefaultLeeway is the clock skew allowed when checking exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultJWKSRefreshInterval is how often a JWKS is fetched again.
	DefaultJWKSRefreshInterval = 15 * time.Minute
	// DefaultJWKSMinRefreshInterval is the shortest time between two JWKS
	// fetches, however many tokens with unknown key IDs arrive.
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	// DefaultJWKSTimeout bounds one JWKS fetch.
	DefaultJWKSTimeout = 10 * time.Second
	// MinHMACSecretLength is the shortest HMAC secret accepted: RFC 7518
	// section 3.2 requires a key at least as long as the hash (HS256).
	MinHMACSecretLength = 32
)

// Errors of New. Every error New returns for a bad configuration matches
// ErrInvalidOption (errors.Is); some match a more precise one as well.
var (
	// ErrInvalidOption: an option was given a value it does not accept
	// (a negative leeway, a nil clock, a short HMAC secret, …), or the
	// options together cannot verify anything safely. Options never replace
	// such a value with a default.
	ErrInvalidOption = errors.New("jwtverify: invalid option")
	// ErrNoAlgorithms: WithAlgorithms is required.
	ErrNoAlgorithms error = &optionError{"no algorithms: WithAlgorithms is required (for example RS256)"}
	// ErrNoKeySource: no public key, HMAC secret or JWKS.
	ErrNoKeySource error = &optionError{"no key source: give a public key, an HMAC secret or a JWKS URL"}
	// ErrAlgorithmNone: "none" was allowed; it never is.
	ErrAlgorithmNone error = &optionError{`algorithm "none" is never accepted`}
)

// optionError is an error of the configuration: it says what is wrong
// and matches ErrInvalidOption.
type optionError struct{ msg string }

func (e *optionError) Error() string { return e.msg }

func (e *optionError) Is(target error) bool { return target == ErrInvalidOption }

// optionErr is the error of one option.
func optionErr(format string, args ...any) error {
	return &optionError{fmt.Sprintf(format, args...)}
}

type config struct {
	logger       *slog.Logger
	httpClient   *http.Client
	algs         []string
	keys         []crypto.PublicKey
	hmacSecret   []byte
	jwksURL      string
	jwksInterval time.Duration
	jwksMin      time.Duration
	jwksTimeout  time.Duration
	onKeySet     func()
	issuers      []string
	audiences    []string
	leeway       time.Duration
	requireIAT   bool
	now          func() time.Time
}

func defaultConfig() config {
	return config{
		logger:       slog.New(slog.DiscardHandler),
		leeway:       DefaultLeeway,
		now:          time.Now,
		jwksInterval: DefaultJWKSRefreshInterval,
		jwksMin:      DefaultJWKSMinRefreshInterval,
		jwksTimeout:  DefaultJWKSTimeout,
	}
}

// Option configures New. An option given a value it does not accept makes
// New return an error matching ErrInvalidOption.
type Option func(*config) error

// Validate applies opts to a default configuration and returns the errors
// of the options themselves (not those New finds by combining them, such as
// a missing key source). Command lines use it to check one flag's value.
func Validate(opts ...Option) error {
	cfg := defaultConfig()
	return applyOptions(&cfg, opts)
}

func applyOptions(c *config, opts []Option) error {
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WithLogger sets where the verifier logs the keys it loads and JWKS
// refreshes. Default: nothing is logged. nil is an error.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return optionErr("WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithHTTPClient sets the client that fetches the JWKS (default
// http.DefaultClient, each fetch bounded by DefaultJWKSTimeout). nil is an
// error.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return optionErr("WithHTTPClient: nil client")
		}
		c.httpClient = hc
		return nil
	}
}

// WithAlgorithms sets the JWS algorithms accepted (required): any of HS256,
// HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
// ES512 and EdDSA. "none" is always refused (ErrAlgorithmNone). HS* needs
// WithHMACSecret; the others need a public key of their kind or a JWKS.
func WithAlgorithms(algs ...string) Option {
	return func(c *config) error {
		c.algs = append(c.algs, algs...)
		return nil
	}
}

// WithPublicKeys adds trusted public keys: *rsa.PublicKey (at least
// MinRSABits), *ecdsa.PublicKey (P-256, P-384, P-521) or ed25519.PublicKey.
// They verify tokens whatever their kid. Any other key is an error.
func WithPublicKeys(keys ...crypto.PublicKey) Option {
	return func(c *config) error {
		var errs []error
		for _, k := range keys {
			if err := CheckKey(k); err != nil {
				errs = append(errs, optionErr("public key: %v", err))
				continue
			}
			c.keys = append(c.keys, k)
		}
		return errors.Join(errs...)
	}
}

// WithPublicKeyPEM adds the public keys in PEM data (see
// ParsePublicKeysPEM). Data without any, or with a private key, is an error.
func WithPublicKeyPEM(data []byte) Option {
	return func(c *config) error {
		keys, err := ParsePublicKeysPEM(data)
		if err != nil {
			return optionErr("public key PEM: %v", err)
		}
		c.keys = append(c.keys, keys...)
		return nil
	}
}

// WithPublicKeyFile adds the public keys in a PEM file (see
// WithPublicKeyPEM).
func WithPublicKeyFile(path string) Option {
	return func(c *config) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return optionErr("public key file: %v", err)
		}
		keys, err := ParsePublicKeysPEM(data)
		if err != nil {
			return optionErr("public key file %s: %v", path, err)
		}
		c.keys = append(c.keys, keys...)
		return nil
	}
}

// WithHMACSecret sets the secret of HS256/HS384/HS512 tokens: at least
// MinHMACSecretLength bytes, or an error.
func WithHMACSecret(secret []byte) Option {
	return func(c *config) error {
		if len(secret) < MinHMACSecretLength {
			return optionErr("HMAC secret of %d bytes: at least %d are required", len(secret), MinHMACSecretLength)
		}
		c.hmacSecret = slices.Clone(secret)
		return nil
	}
}

// WithJWKS verifies tokens with the keys of a JSON Web Key Set at url (an
// absolute http or https URL, or an error), selected by the token's kid.
// The set is fetched when Run starts and then every
// DefaultJWKSRefreshInterval (see WithJWKSRefresh), always in the
// background: a token whose kid is unknown is refused at once
// (ErrUnknownKID) and triggers a rate-limited refresh.
func WithJWKS(rawURL string) Option {
	return func(c *config) error {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return optionErr("JWKS URL %q: want an absolute http or https URL", rawURL)
		}
		c.jwksURL = rawURL
		return nil
	}
}

// WithJWKSRefresh sets the periodic JWKS refresh interval and the shortest
// time between two fetches (which bounds the fetches that tokens with
// unknown kids can cause). Both must be positive, and minInterval at most
// interval: anything else is an error (no value falls back to a default).
func WithJWKSRefresh(interval, minInterval time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 || minInterval <= 0 || minInterval > interval {
			return optionErr("WithJWKSRefresh(%v, %v): both must be positive, the minimum at most the interval", interval, minInterval)
		}
		c.jwksInterval, c.jwksMin = interval, minInterval
		return nil
	}
}

// WithKeySetHook calls f (on the refresher's goroutine) each time a JWKS is
// loaded or changes, for example to drop tokens verified with keys that may
// be gone.
func WithKeySetHook(f func()) Option {
	return func(c *config) error {
		c.onKeySet = f
		return nil
	}
}

// WithIssuers sets the accepted iss values; a token must carry one of them.
// Without it, any issuer is accepted.
func WithIssuers(iss ...string) Option {
	return func(c *config) error {
		c.issuers = append(c.issuers, iss...)
		return nil
	}
}

// WithAudiences sets the accepted aud values; a token's aud must contain at
// least one of them. Without it, aud is not checked.
func WithAudiences(aud ...string) Option {
	return func(c *config) error {
		c.audiences = append(c.audiences, aud...)
		return nil
	}
}

// WithLeeway sets the clock skew allowed for exp, nbf and iat (default
// DefaultLeeway); zero allows none. A negative leeway is an error.
func WithLeeway(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return optionErr("leeway %v must not be negative", d)
		}
		c.leeway = d
		return nil
	}
}

// WithRequireIssuedAt refuses tokens without iat.
func WithRequireIssuedAt(require bool) Option {
	return func(c *config) error {
		c.requireIAT = require
		return nil
	}
}

// WithClock sets the clock token times are checked against. Default
// time.Now; nil is an error.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return optionErr("WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}
