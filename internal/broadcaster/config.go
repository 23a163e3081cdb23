package broadcaster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// Defaults of Config.
const (
	DefaultAddr               = "127.0.0.1:8080"
	DefaultDataDir            = "./data"
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
)

// Config is everything the broadcaster needs; the zero value of a field means
// its default.
type Config struct {
	Addr string
	// Listener, when set, is used instead of listening on Addr (tests,
	// socket activation).
	Listener net.Listener

	// The log: embedded NATS under DataDir unless NATS.URLs is set.
	DataDir string
	NATS    natslog.Config

	MaxTokenLifetime time.Duration
	Heartbeat        time.Duration
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
	SweepInterval     time.Duration
	// EpochCheckInterval is how often the stream's identity is checked (an
	// external NATS stream may be deleted and created again).
	EpochCheckInterval time.Duration

	// Access. Auth nil or without credentials: everyone may do everything,
	// and the server only listens on loopback unless Insecure.
	Auth         *auth.Authenticator
	Insecure     bool
	PublicEvents bool // /v1/events needs no credential even with Auth
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
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.MaxTokenLifetime <= 0 {
		c.MaxTokenLifetime = events.DefaultMaxTokenLifetime
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
	if c.NATS.DataDir == "" {
		c.NATS.DataDir = c.DataDir
	}
	if c.NATS.Logger == nil {
		c.NATS.Logger = c.Logger
	}
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
	if c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, errors.New("heartbeat must be at least 100ms"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.RateLimit < 0 {
		errs = append(errs, errors.New("rate-limit must not be negative"))
	}
	return errors.Join(errs...)
}

// ErrInsecure is returned when the server would listen beyond loopback with
// no credentials configured.
var ErrInsecure = errors.New("refusing to listen beyond loopback without credentials")

// checkExposure enforces "secure by default" on the address actually bound.
func (c *Config) checkExposure(addr string) error {
	if c.Auth.Enabled() || isLoopback(addr) || c.Insecure {
		return nil
	}
	return fmt.Errorf("%w: %s is reachable from other machines and anyone there could revoke any token "+
		"and read who was banned. Configure credentials (--api-keys FILE, or operator JWTs with --auth-jwks "+
		"or --auth-public-key), listen on 127.0.0.1, or pass --insecure if something in front of the "+
		"broadcaster already authenticates", ErrInsecure, addr)
}
