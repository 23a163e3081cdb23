package broadcaster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// Defaults of Config.
const (
	DefaultAddr               = "127.0.0.1:8080"
	DefaultHeartbeat          = 15 * time.Second
	DefaultRetry              = 2 * time.Second
	DefaultMaxBodyBytes       = 1 << 20
	DefaultMaxBatch           = events.MaxBatch
	DefaultListLimit          = 100
	MaxListLimit              = 1000
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultSweepInterval      = 10 * time.Second
	DefaultEpochCheckInterval = 5 * time.Second
	DefaultResumeWait         = 5 * time.Second
	DefaultReadHeaderTimout   = 10 * time.Second
	DefaultIdleTimeout        = 2 * time.Minute
	// MaxExpiryGrace bounds --expiry-grace: revocations must leave the
	// stream by their TTL well before its MaxAge safety net.
	MaxExpiryGrace         = 24 * time.Hour
	DefaultReadTimeout     = 30 * time.Second
	DefaultMaxConnsPerAddr = 256
)

// Config is everything the broadcaster needs; the zero value of a field means
// its default.
type Config struct {
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests,
	// socket activation).
	Listener net.Listener

	// Backend is the revocation log, connected by Start once the other
	// checks passed (natslog.Config for JetStream, memlog.Config in
	// memory): the caller's wiring chooses it, the server only knows
	// eventlog.
	Backend eventlog.Backend
	// Log, when set, is a log already connected, used instead of
	// Backend. The server closes it on Shutdown; when Start fails, the
	// caller closes it.
	Log eventlog.Log

	MaxTokenLifetime time.Duration
	// ExpiryGrace is G: how long past its expires_at a revocation stays in
	// the log and in the full state new subscribers receive (agents accept
	// tokens up to their leeway past exp, and their leeway must stay below
	// G). Listings hide a revocation from its expires_at.
	ExpiryGrace time.Duration
	Heartbeat   time.Duration
	// Retry is the reconnection delay advertised to SSE clients.
	Retry        time.Duration
	CORSOrigins  []string
	MaxBodyBytes int64
	MaxBatch     int
	// MaxLag is how many stream sequences a subscriber may trail the head
	// by before it is disconnected as slow.
	MaxLag uint64
	// WriteTimeout bounds each write to a subscriber: one that does not
	// drain its socket for that long is disconnected.
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout and IdleTimeout protect against clients that hold
	// connections without sending; neither cuts a stream.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// ReadTimeout bounds reading a whole request, headers and body, from
	// its first byte. An authorised /v1/events stream is exempt once it
	// starts.
	ReadTimeout time.Duration
	// MaxConnsPerAddr bounds the connections one client IP address may
	// hold open, SSE streams excepted once authorised (the subscriber cap
	// covers those); one more is closed without an answer. Negative: no
	// limit.
	MaxConnsPerAddr int
	SweepInterval   time.Duration
	// EpochCheckInterval is how often the stream's identity is checked (an
	// external NATS stream may be deleted and created again).
	EpochCheckInterval time.Duration

	// Access. Auth nil or without credentials: everyone may do everything,
	// and the server only listens on loopback unless Insecure.
	Auth *auth.Authenticator
	// Insecure allows what is refused by default: listening beyond
	// loopback without credentials, cluster routes beyond loopback
	// without a secret or mutual TLS, and the demo credentials shipped
	// with the deployment examples beyond loopback. Each is logged as a
	// warning.
	Insecure bool
	// DemoCredentials names the demo credentials (shipped with the
	// deployment examples, hence known to everyone) found in the
	// configuration; they are refused beyond loopback unless Insecure.
	DemoCredentials []string
	PublicEvents    bool // /v1/events needs no credential even with Auth
	// RateLimit is requests per second per credential on the revocation
	// API (0: no limit), with bursts of RateBurst.
	RateLimit      float64
	RateBurst      int
	MaxSubscribers int // concurrent SSE subscribers; 503 beyond
	// MaxSubscribersPerPrincipal bounds the streams of one credential (and,
	// without one, of one client address), so that a leaked reader key or
	// one busy address cannot take every slot; zero: three quarters of
	// MaxSubscribers.
	MaxSubscribersPerPrincipal int
	// GenericAuthErrors answers every refused credential (401) with the
	// same text, whatever the reason (unknown, invalid, expired, revoked).
	GenericAuthErrors bool
	// TokenVerifier checks the tokens posted to POST /v1/revoke. Nil: they
	// are only decoded, and the endpoint then needs the revoker role.
	TokenVerifier TokenVerifier

	TLSCertFile string
	TLSKeyFile  string

	// AgentStaleness: an agent that reported nothing for this long is
	// listed as not fresh. AgentRetention: how long a disconnected agent
	// stays listed (and the TTL of the positions bucket). AgentFlush: how
	// often this node writes its agents' reports for the other nodes.
	AgentStaleness time.Duration
	AgentRetention time.Duration
	AgentFlush     time.Duration

	// PprofAddr is a loopback host:port serving net/http/pprof; empty: none.
	PprofAddr string

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxTokenLifetime <= 0 {
		c.MaxTokenLifetime = events.DefaultMaxTokenLifetime
	}
	if c.ExpiryGrace <= 0 {
		c.ExpiryGrace = events.DefaultExpiryGrace
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Retry <= 0 {
		c.Retry = DefaultRetry
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.EpochCheckInterval <= 0 {
		c.EpochCheckInterval = DefaultEpochCheckInterval
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.AgentStaleness <= 0 {
		c.AgentStaleness = DefaultAgentStaleness
	}
	if c.AgentRetention <= 0 {
		c.AgentRetention = DefaultAgentRetention
	}
	if c.AgentFlush <= 0 {
		c.AgentFlush = DefaultAgentFlush
	}
	if c.Auth == nil {
		c.Auth = auth.New(nil, nil)
	}
	if c.RateBurst <= 0 {
		c.RateBurst = max(DefaultRateBurst, int(2*c.RateLimit))
	}
	if c.MaxSubscribers <= 0 {
		c.MaxSubscribers = DefaultMaxSubscribers
	}
	if c.MaxSubscribersPerPrincipal <= 0 || c.MaxSubscribersPerPrincipal > c.MaxSubscribers {
		c.MaxSubscribersPerPrincipal = max(1, c.MaxSubscribers*3/4)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// logDescription describes the log: Backend's description, or a bare one
// naming the type of a Log given as is.
func (c *Config) logDescription() eventlog.Description {
	switch {
	case c.Log != nil:
		return eventlog.Description{Kind: fmt.Sprintf("%T", c.Log)}
	case c.Backend != nil:
		return c.Backend.Describe()
	}
	return eventlog.Description{}
}

// CheckConfig runs the checks of New, and those of Start that need nothing
// running (exposure, on Addr as written), without starting anything.
func CheckConfig(cfg Config) error {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	return cfg.checkExposure(cfg.Addr)
}

func (c *Config) validate() error {
	var errs []error
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr %q: want host:port", c.Addr))
		}
	}
	if c.MaxTokenLifetime < time.Second {
		errs = append(errs, errors.New("max-token-lifetime must be at least 1s"))
	}
	// whole seconds: synced tells agents G in seconds, and a G of less
	// than a second would read as "not said"
	if c.ExpiryGrace < time.Second || c.ExpiryGrace > MaxExpiryGrace {
		errs = append(errs, fmt.Errorf("expiry-grace must be from 1s to %v", MaxExpiryGrace))
	}
	if c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, errors.New("heartbeat must be at least 100ms"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.RateLimit < 0 {
		errs = append(errs, errors.New("rate-limit must not be negative"))
	}
	switch {
	case c.Log == nil && c.Backend == nil:
		errs = append(errs, errors.New("no revocation log: set Backend (or Log)"))
	case c.Log == nil:
		if err := c.Backend.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// ErrConfig is matched (errors.Is) by the errors of New for a configuration
// that cannot work, whatever happens at run time.
var ErrConfig = errors.New("invalid configuration")

// ErrInsecure is returned when the server would listen beyond loopback with
// no credentials configured.
var ErrInsecure = errors.New("refusing to listen beyond loopback without credentials")

// checkExposure enforces "secure by default" on the address actually bound,
// on the cluster routes' address and on demo credentials.
func (c *Config) checkExposure(addr string) error {
	if c.Insecure {
		return nil
	}
	if !c.Auth.Enabled() && !isLoopback(addr) {
		return fmt.Errorf("%w: %s is reachable from other machines and anyone there could revoke any token "+
			"and read who was banned. Configure credentials (--api-keys FILE, or operator JWTs with --auth-jwks "+
			"or --auth-public-key), listen on 127.0.0.1, or pass --insecure if something in front of the "+
			"broadcaster already authenticates", ErrInsecure, addr)
	}
	if c.openRoutes() {
		return fmt.Errorf("%w: the cluster routes on %s are reachable from other machines and accept any NATS server: "+
			"one that joins can write and lift revocations straight into the stream, past the API's credentials "+
			"and audit log. Give every node the same --cluster-secret-file (16+ characters), or mutual TLS with "+
			"--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca, listen for routes on 127.0.0.1, or pass "+
			"--insecure if the network itself keeps every other server away from the route port",
			ErrInsecure, c.logDescription().PeerAddr)
	}
	if exposed := c.demoExposed(addr); exposed != "" && len(c.DemoCredentials) > 0 {
		return fmt.Errorf("%w: %s is reachable from other machines, and the configuration uses demo credentials "+
			"published with revocast's deployment examples, which everyone knows (%s). Make your own (the keygen "+
			"command; a random cluster secret), listen on 127.0.0.1, or pass --insecure for a demo",
			ErrInsecure, exposed, strings.Join(c.DemoCredentials, "; "))
	}
	return nil
}

// openRoutes reports whether the log listens for peers (cluster routes)
// beyond loopback without a secret or mutual TLS.
func (c *Config) openRoutes() bool {
	d := c.logDescription()
	return d.PeerAddr != "" && !isLoopback(d.PeerAddr) && !d.PeersAuthenticated
}

// demoExposed returns the address (HTTP, or cluster routes) that demo
// credentials would be used on beyond loopback, or "".
func (c *Config) demoExposed(addr string) string {
	if !isLoopback(addr) {
		return addr
	}
	if d := c.logDescription(); d.PeerAddr != "" && !isLoopback(d.PeerAddr) {
		return d.PeerAddr
	}
	return ""
}

// insecureWarnings lists what --insecure allowed that would otherwise have
// been refused, for the log.
func (c *Config) insecureWarnings(addr string) []string {
	if !c.Insecure {
		return nil
	}
	var w []string
	if c.openRoutes() {
		w = append(w, "INSECURE: the cluster routes on "+c.logDescription().PeerAddr+" accept any NATS server (no --cluster-secret-file, "+
			"no --cluster-tls-*; --insecure): whoever reaches that port can join the cluster and write or lift revocations "+
			"past the API's credentials and audit log")
	}
	if exposed := c.demoExposed(addr); exposed != "" && len(c.DemoCredentials) > 0 {
		w = append(w, "INSECURE: demo credentials known to everyone are used on "+exposed+" (--insecure): "+
			strings.Join(c.DemoCredentials, "; "))
	}
	return w
}
