// Package broadcaster is the revocast broadcaster: the HTTP API operators
// post revocations to, and the SSE stream that fans the revocation log out
// to agents. The log is an eventlog.Backend the caller chooses (the
// JetStream log of pkg/events/natslog in cmd/broadcaster, the in-memory log
// of pkg/events/memlog in most tests); this package knows only eventlog.
// cmd/broadcaster wires flags into a Config and calls Start; tests call
// Start and Shutdown with a ":0" address.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/internal/ui"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// Server is one broadcaster process.
type Server struct {
	cfg     Config
	log     *slog.Logger
	policy  events.Policy
	metrics *metrics

	store   eventlog.Log
	desc    eventlog.Description // of the log, from the configuration
	hub     *hub.Hub
	fleet   *fleet // the agents and what they applied
	auth    *auth.Authenticator
	guard   *operatorGuard // nil without operator JWTs
	limiter *rateLimiter
	// streamsOpen counts /v1/events requests past the subscriber cap check.
	streamsOpen atomic.Int64
	shares      streamShares // streams per principal
	// pumps counts the streams running on hijacked connections, which
	// http.Server.Shutdown does not know about.
	pumps sync.WaitGroup
	http  *http.Server
	ln    net.Listener

	// streams ends every SSE response when shutdown begins, so that
	// http.Server.Shutdown does not wait for ever on open streams.
	streams    context.Context
	endStreams context.CancelFunc
	// router is the full API, installed once the log is open.
	router atomic.Pointer[http.Handler]
	opened chan struct{} // closed when the log is open (router set)
	// follower keeps the hub following the log and owns every wait on
	// it; set in open, before the router.
	follower *follower
	ready    chan struct{} // closed when the mirror has caught up
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
	desc := cfg.logDescription()
	s := &Server{
		cfg:     cfg,
		desc:    desc,
		log:     cfg.Logger,
		auth:    cfg.Auth,
		limiter: newRateLimiter(cfg.RateLimit, cfg.RateBurst),
		policy: events.Policy{
			MaxTokenLifetime: cfg.MaxTokenLifetime,
			MaxExpiry:        maxExpiry(desc.MaxAge, cfg.ExpiryGrace),
		},
	}
	if cfg.Auth.VerifiesJWTs() {
		s.guard = newOperatorGuard()
	}
	s.opened, s.ready = make(chan struct{}), make(chan struct{})
	s.fleet = newFleet(desc.Node, cfg.AgentStaleness, cfg.AgentRetention)
	if s.fleet.node == "" {
		s.fleet.node = "revocast"
	}
	s.metrics = newMetrics(func() *hub.Hub {
		select {
		case <-s.opened:
			return s.hub
		default:
			return nil
		}
	})
	s.fleet.onLag, s.fleet.onDone, s.fleet.gauge = s.metrics.appliedLag.Observe, s.metrics.enforced.Observe, s.metrics.agentsConnected.Set
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.background, s.endBackground = context.WithCancel(context.Background())
	return s, nil
}

func maxExpiry(maxAge, grace time.Duration) time.Duration {
	if maxAge <= 0 {
		maxAge = eventlog.DefaultMaxAge
	}
	// a revocation must leave by TTL (expires_at + G) before the stream's
	// safety net would cut it
	return maxAge - time.Hour - grace
}

// Start binds the listener and starts serving at once, then opens the log in
// the background: in a cluster the JetStream meta leader and the stream
// exist only once a quorum of peers is up, and meanwhile /healthz must
// answer (or an orchestrator restarts the pod). Until the log is open and
// the mirror caught up, /readyz answers 503, /v1/events holds its requests
// and the revocation API answers 503 with Retry-After.
//
// Start fails fast on what retrying cannot fix: an exposed address without
// credentials, an address in use, an unusable data directory or NATS
// configuration.
func (s *Server) Start(ctx context.Context) error {
	addr := s.cfg.Addr
	if s.cfg.Listener != nil {
		addr = s.cfg.Listener.Addr().String()
	}
	if err := s.cfg.checkExposure(addr); err != nil {
		return err
	}
	if err := s.startPprof(s.cfg.PprofAddr); err != nil {
		return err
	}
	store := s.cfg.Log
	if store == nil {
		var err error
		store, err = s.cfg.Backend.Connect(eventlog.ConnectOptions{ExpiryGrace: s.cfg.ExpiryGrace, Logger: s.log})
		if err != nil {
			return fmt.Errorf("open revocation log: %w", err)
		}
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			if s.cfg.Log == nil {
				store.Close()
			}
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.ln = ln
	s.store = store
	if s.cfg.MaxConnsPerAddr > 0 {
		ln = newAddrLimiter(ln, s.cfg.MaxConnsPerAddr, s.log,
			s.metrics.rejected.WithLabelValues("too_many_connections").Inc)
	}
	s.http = &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		// every request must arrive whole within ReadTimeout of its
		// first byte, whoever sends it; an authorised stream lifts it
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.http.RegisterOnShutdown(s.endStreams)

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
	s.wg.Add(1)
	go s.open()
	s.log.Info("broadcaster listening", "addr", ln.Addr().String(), "scheme", scheme,
		"log", s.desc.Kind, "data", s.desc.Where)
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
	for _, w := range s.cfg.insecureWarnings(ln.Addr().String()) {
		s.log.Warn(w)
	}
	return nil
}

// open waits for the stream, then builds the mirror, starts the consumer
// and the sweeper and switches the HTTP server to the full API.
func (s *Server) open() {
	defer s.wg.Done()
	if err := s.store.Open(s.background); err != nil {
		if s.background.Err() == nil {
			s.log.Error("revocation log unavailable", "err", err)
		}
		return
	}
	h := hub.New(s.store.Epoch(), hub.WithMaxLag(s.cfg.MaxLag), hub.WithExpiryGrace(s.cfg.ExpiryGrace))
	s.hub = h
	s.fleet.epoch, s.fleet.head = h.Epoch, h.Head
	f := newFollower(s.store, h, s.log, s.cfg.Heartbeat, s.cfg.EpochCheckInterval)
	if s.guard != nil {
		guard := s.guard
		f.onApply = func(rec eventlog.Record) { guard.apply(rec.Seq, rec.Type, rec.Data) }
		f.onReset = func(uint64) { guard.reset() }
	}
	f.onCheck = func(caughtUp bool) {
		outcome := "not_caught_up"
		if caughtUp {
			outcome = "caught_up"
		}
		s.metrics.currentChecks.WithLabelValues(outcome).Inc()
	}
	s.follower = f
	router := s.routes()
	s.router.Store(&router)
	s.wg.Add(5)
	go func() {
		defer s.wg.Done()
		s.fleet.settleLoop(s.background)
	}()
	go func() {
		defer s.wg.Done()
		s.runFleet(s.background)
	}()
	go func() {
		defer s.wg.Done()
		f.run(s.background)
	}()
	go s.sweep()
	go func() {
		defer s.wg.Done()
		select {
		case <-h.Ready():
			s.log.Info("broadcaster ready", "epoch", s.store.Epoch(), "head", h.HeadID(), "entries", h.Len())
			close(s.ready)
		case <-s.background.Done():
		}
	}()
	close(s.opened)
}

// serveHTTP serves the full API once the log is open; before that, the
// probes, metrics and the API description, and it holds or refuses the rest.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// CORS headers go on every answer to an allowed origin, refusals
	// included, so that a page can read why it was refused
	if origin := s.allowedOrigin(r); origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	if !s.hostAllowed(r) {
		s.refuseHost(w, r)
		return
	}
	if h := s.router.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	switch {
	case r.URL.Path == "/healthz":
		s.handleHealth(w, r)
	case r.URL.Path == "/readyz":
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "waiting for the revocation log (JetStream meta leader and stream)", Server: s.desc.Node})
	case r.URL.Path == "/metrics":
		s.metrics.handler().ServeHTTP(w, r)
	case r.URL.Path == "/v1/openapi.json":
		s.handleOpenAPI(w, r)
	case strings.HasPrefix(r.URL.Path, ui.Prefix) && r.Method == http.MethodGet:
		ui.Handler().ServeHTTP(w, r) // the page shows that the API is not ready yet
	case r.URL.Path == "/v1/events" && r.Method == http.MethodGet:
		// EventSource gives up for good on a 5xx: hold the request
		select {
		case <-s.opened:
			(*s.router.Load()).ServeHTTP(w, r)
		case <-r.Context().Done():
		case <-s.streams.Done():
		}
	default:
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, "the revocation log is not available yet; retry shortly", "")
	}
}

// Addr is the address the server listens on (useful with ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Registry holds the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// Ready is closed once the log is open and the mirror has caught up with it.
func (s *Server) Ready() <-chan struct{} { return s.ready }

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
		waitGroupOrContext(ctx, &s.pumps)
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

func waitGroupOrContext(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
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
