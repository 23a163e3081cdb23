package broadcaster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// Defaults of Config.
const (
	DefaultAddr             = "127.0.0.1:8080"
	DefaultDataDir          = "./data"
	DefaultHeartbeat        = 15 * time.Second
	DefaultRetry            = 2 * time.Second
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxBatch         = events.MaxBatch
	DefaultListLimit        = 100
	MaxListLimit            = 1000
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultSweepInterval    = 10 * time.Second
	DefaultResumeWait       = 5 * time.Second
	DefaultReadHeaderTimout = 10 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
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
	SweepInterval   time.Duration

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
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
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
	return errors.Join(errs...)
}
