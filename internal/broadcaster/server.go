// Package broadcaster is the revocast broadcaster: the HTTP API operators
// post revocations to, the revocation log they are stored in, and the SSE
// stream that fans them out to agents. cmd/broadcaster wires flags into a
// Config and calls Run; tests call Start and Shutdown with a temporary data
// directory and a ":0" address.
//
// A *Server is safe for concurrent use; Start and Shutdown are each called
// once.
package broadcaster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// Server is one broadcaster process.
type Server struct {
	cfg     Config
	log     *slog.Logger
	policy  events.Policy
	metrics *metrics

	store   *natslog.Log
	hub     *hub.Hub
	auth    *auth.Authenticator
	limiter *rateLimiter
	// streamsOpen counts /v1/events requests past the subscriber cap check.
	streamsOpen atomic.Int64
	http        *http.Server
	ln          net.Listener

	// streams ends every SSE response when shutdown begins, so that
	// http.Server.Shutdown does not wait for ever on open streams.
	streams    context.Context
	endStreams context.CancelFunc
	// background runs the consumer and the sweeper.
	background    context.Context
	endBackground context.CancelFunc
	wg            sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// New checks the configuration. Nothing runs until Start.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		auth:    cfg.Auth,
		limiter: newRateLimiter(cfg.RateLimit, cfg.RateBurst),
		policy: events.Policy{
			MaxTokenLifetime: cfg.MaxTokenLifetime,
			MaxExpiry:        maxExpiry(cfg.NATS.MaxAge),
		},
	}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.background, s.endBackground = context.WithCancel(context.Background())
	return s, nil
}

func maxExpiry(maxAge time.Duration) time.Duration {
	if maxAge <= 0 {
		maxAge = natslog.DefaultMaxAge
	}
	// a revocation must leave by TTL before the stream's safety net
	// would cut it
	return maxAge - time.Hour
}

// Start opens the log, starts following it and listens. It returns once the
// listener is bound; /v1/events holds its requests until the mirror has
// caught up with the log.
func (s *Server) Start(ctx context.Context) error {
	addr := s.cfg.Addr
	if s.cfg.Listener != nil {
		addr = s.cfg.Listener.Addr().String()
	}
	if err := s.cfg.checkExposure(addr); err != nil {
		return err
	}
	store, err := natslog.Open(ctx, s.cfg.NATS)
	if err != nil {
		return fmt.Errorf("open revocation log: %w", err)
	}
	s.store = store
	s.hub = hub.New(store.Epoch(), hub.WithMaxLag(s.cfg.MaxLag))
	s.metrics = newMetrics(s.hub)

	ln := s.cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			store.Close()
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.http.RegisterOnShutdown(s.endStreams)

	s.wg.Add(2)
	go s.follow()
	go s.sweep()
	scheme := "http"
	if s.cfg.TLSCertFile != "" {
		scheme = "https"
	}
	go func() {
		var err error
		if scheme == "https" {
			err = s.http.ServeTLS(ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		} else {
			err = s.http.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	s.log.Info("broadcaster listening", "addr", ln.Addr().String(), "scheme", scheme, "epoch", store.Epoch(),
		"nats", natsMode(s.cfg.NATS), "data", s.cfg.DataDir)
	switch {
	case s.auth.Enabled():
		s.log.Info("credentials required", "public_events", s.cfg.PublicEvents)
	case isLoopback(ln.Addr().String()):
		s.log.Warn("no credentials configured: listening on loopback only, where every local caller may revoke and read; " +
			"configure --api-keys or operator JWTs to listen elsewhere")
	default:
		s.log.Warn("INSECURE: no credentials configured and listening beyond loopback (--insecure): " +
			"anyone who reaches " + ln.Addr().String() + " can revoke any token and read who was banned")
	}
	return nil
}

func natsMode(c natslog.Config) string {
	if len(c.URLs) > 0 {
		return "external"
	}
	return "embedded"
}

// Addr is the address the server listens on (useful with ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Registry holds the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// Ready is closed once the mirror has caught up with the log.
func (s *Server) Ready() <-chan struct{} { return s.hub.Ready() }

// follow is the one consumer of this process: it feeds the hub from the log
// and starts again after the last applied sequence when it fails.
func (s *Server) follow() {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for s.background.Err() == nil {
		from := s.hub.Head() + 1
		err := s.store.Follow(s.background, from, s.apply, s.hub.SetReady)
		if s.background.Err() != nil {
			return
		}
		s.log.Warn("following the log failed; resuming", "from", from, "err", err, "in", backoff)
		select {
		case <-s.background.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Server) apply(rec natslog.Record) error {
	ev := hub.Event{Seq: rec.Seq, Type: rec.Type, Key: rec.Key, Revocation: rec.Revocation, Expires: rec.Expires}
	if err := s.hub.Apply(ev); err != nil {
		s.log.Error("cannot fan out event", "seq", rec.Seq, "err", err)
	}
	return nil
}

func (s *Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.background.Done():
			return
		case now := <-t.C:
			if n := s.hub.Sweep(now); n > 0 {
				s.log.Debug("forgot expired entries", "count", n)
			}
		}
	}
}

// Shutdown stops in a fixed order: stop accepting and end the streams (so
// clients reconnect elsewhere), wait for in-flight requests, stop following
// the log, drain the NATS connection, stop the embedded NATS server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		var errs []error
		if s.http != nil {
			if err := s.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
				s.http.Close()
			}
		}
		s.endStreams()
		s.endBackground()
		s.wg.Wait()
		if s.store != nil {
			if err := s.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close log: %w", err))
			}
		}
		s.shutdownErr = errors.Join(errs...)
		s.log.Info("broadcaster stopped")
	})
	return s.shutdownErr
}

// Run starts the server and serves until ctx ends, then shuts down.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}
