// Command agent is the revocast sidecar for services that do not embed
// pkg/agent (any language, any proxy): it follows a broadcaster's
// revocation stream, verifies JWTs locally, and answers forward-auth
// requests (GET /auth, for nginx auth_request, Traefik forwardAuth, Envoy
// ext_authz and Caddy forward_auth) and RFC 7662 introspection requests
// (POST /v1/introspect).
//
// Every flag falls back to a REVOCAST_* environment variable; run
// "agent --help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/revocast/revocast/internal/cmdutil"
	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/pkg/agent"
	"github.com/revocast/revocast/pkg/cache"
)

// Defaults of the flags.
const (
	DefaultAddr        = "127.0.0.1:9090"
	DefaultBroadcaster = "http://127.0.0.1:8080"
	DefaultRealm       = "revocast"
	shutdownTimeout    = 10 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	broadcasters  []string
	tokenFile     string
	caFile        string
	addr          string
	publicKeys    []string
	hmacFile      string
	jwks          string
	issuers       []string
	audiences     []string
	algs          []string
	leeway        time.Duration
	maxLifetime   time.Duration
	maxStaleness  time.Duration
	stalePolicy   string
	requireIAT    bool
	denyCapacity  int
	cacheCapacity int
	realm         string
	genericErrors bool
	logLevel      string
	logFormat     string
	name          string
	flagsJSON     bool // print the flags and exit (--flags-json)
	checkConfig   bool // validate the configuration and exit (--check-config)
}

func parseFlags(args []string, getenv func(string) string, output io.Writer) (config, *envflag.Set, error) {
	var c config
	fs := envflag.New("agent", getenv, output)
	fs.List(&c.broadcasters, "broadcaster", []string{DefaultBroadcaster}, "broadcaster base URL(s) serving /v1/events; repeat or separate with commas for a cluster")
	fs.String(&c.tokenFile, "token-file", "", "file holding the API key (or operator JWT) sent to the broadcaster as Authorization: Bearer")
	fs.String(&c.caFile, "ca-file", "", "PEM file of CA certificates trusted for https broadcaster and JWKS URLs (default: the system roots)")
	fs.String(&c.addr, "addr", DefaultAddr, "HTTP listen address")
	fs.String(&c.name, "name", "", "name reported to the broadcaster (GET /v1/agents, revoke --wait); empty: the host name. Each process adds a random instance id")
	fs.List(&c.publicKeys, "public-key", nil, "PEM file of public keys or certificates that sign tokens (RSA, ECDSA, Ed25519); repeatable")
	fs.String(&c.hmacFile, "hmac-secret-file", "", "file holding the HS256/HS384/HS512 secret (at least 32 bytes; one trailing newline is ignored)")
	fs.String(&c.jwks, "jwks", "", "JWKS URL of the token issuer (keys chosen by kid, refreshed in the background)")
	fs.List(&c.issuers, "issuer", nil, "accepted iss value(s); empty accepts any")
	fs.List(&c.audiences, "audience", nil, "accepted aud value(s): a token must name one; empty skips the check")
	fs.List(&c.algs, "algs", nil, "accepted JWS algorithms (default: those the configured keys can verify; HS* only with an HMAC secret; never none)")
	fs.Duration(&c.leeway, "leeway", agent.DefaultLeeway, "clock skew allowed for exp, nbf and iat")
	fs.Duration(&c.maxLifetime, "max-token-lifetime", 0, "refuse tokens living longer (exp - iat); only lowers the broadcaster's own limit, which applies anyway (0: the broadcaster's)")
	fs.Duration(&c.maxStaleness, "max-staleness", agent.DefaultMaxStaleness, "silence from the broadcaster after which the agent is stale (must exceed its heartbeat)")
	fs.String(&c.stalePolicy, "stale-policy", "closed", "while stale: closed (answer 503) or open (admit tokens that verify and are not on the denylist)")
	fs.Bool(&c.requireIAT, "require-iat", false, "refuse tokens without iat")
	fs.Int(&c.denyCapacity, "denylist-capacity", cache.DefaultCapacity, "revocations kept exactly; more spill into a compact tier that still denies them")
	fs.Int(&c.cacheCapacity, "verified-cache-size", cache.DefaultVerifiedCapacity, "verified tokens remembered to skip signature checks; 0 disables")
	fs.String(&c.realm, "realm", DefaultRealm, "realm of the WWW-Authenticate challenge")
	fs.Bool(&c.genericErrors, "generic-auth-errors", false, "answer every refused token with the same generic description (not saying revoked, expired or why it is invalid)")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.String(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.AddFlagsJSON(&c.flagsJSON)
	fs.AddCheckConfig(&c.checkConfig)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: agent [flags]\n\nRuns the revocast agent sidecar: GET /auth (forward auth), POST /v1/introspect (RFC 7662),\n/healthz, /readyz and /metrics. Each flag falls back to the environment variable in parentheses.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, fs, err
	}
	if c.flagsJSON {
		return c, fs, nil
	}
	if fs.NArg() > 0 {
		return c, fs, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return c, fs, nil
}

// errNoKeys is the refusal to start without any way to verify a token.
var errNoKeys = errors.New("no key source: give --public-key (PEM file), --hmac-secret-file or --jwks " +
	"(or REVOCAST_PUBLIC_KEY, REVOCAST_HMAC_SECRET_FILE, REVOCAST_JWKS); the agent cannot verify tokens without one")

// agentOptions turns the flags into pkg/agent options, reading the files
// they name.
func (c *config) agentOptions(logger *slog.Logger) ([]agent.Option, error) {
	if len(c.publicKeys) == 0 && c.hmacFile == "" && c.jwks == "" {
		return nil, errNoKeys
	}
	src := agent.KeySource{
		PublicKeyFiles: c.publicKeys, HMACSecretFile: c.hmacFile, JWKS: c.jwks,
		Algorithms: c.algs, Issuers: c.issuers, Audiences: c.audiences,
	}
	keyOpts, err := src.Options()
	if err != nil {
		return nil, fmt.Errorf("--public-key / --hmac-secret-file / --jwks: %w", err)
	}
	opts := append([]agent.Option{agent.WithLogger(logger)}, keyOpts...)
	name := c.name
	if name == "" {
		name = defaultName()
	}
	policy, err := agent.ParseStalePolicy(c.stalePolicy)
	if err != nil {
		return nil, fmt.Errorf("--stale-policy: %w", err)
	}
	// pkg/agent validates every value; the flag's name is added here.
	for _, f := range []struct {
		flag string
		opt  agent.Option
	}{
		{"name", agent.WithName(name)},
		{"leeway", agent.WithLeeway(c.leeway)},
		{"max-token-lifetime", agent.WithMaxTokenLifetime(c.maxLifetime)},
		{"max-staleness", agent.WithMaxStaleness(c.maxStaleness)},
		{"stale-policy", agent.WithStalePolicy(policy)},
		{"require-iat", agent.WithRequireIssuedAt(c.requireIAT)},
		{"denylist-capacity", agent.WithDenylistCapacity(c.denyCapacity)},
		{"verified-cache-size", agent.WithVerifiedCacheCapacity(c.cacheCapacity)},
	} {
		if err := agent.Validate(f.opt); err != nil {
			return nil, fmt.Errorf("--%s: %w", f.flag, err)
		}
		opts = append(opts, f.opt)
	}
	if c.tokenFile != "" {
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token-file: %w", err)
		}
		t := strings.TrimSpace(string(tok))
		if t == "" {
			return nil, fmt.Errorf("token-file %s is empty", c.tokenFile)
		}
		opts = append(opts, agent.WithBearerToken(t))
	}
	if c.caFile != "" {
		hc, err := cmdutil.HTTPClient(c.caFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, agent.WithHTTPClient(hc))
	}
	return opts, nil
}

// run parses the arguments, follows the broadcaster and serves until ctx
// ends, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := parseFlags(args, getenv, stderr)
	if cfg.flagsJSON {
		// the defaults as documented, read without the environment
		_, fs, _ := parseFlags(nil, func(string) string { return "" }, io.Discard)
		return fs.WriteFlagsJSON(stdout)
	}
	if err != nil {
		return err
	}
	logger, err := cmdutil.NewLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	opts, err := cfg.agentOptions(logger)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg.broadcasters, opts...)
	if err != nil {
		return err
	}
	if cfg.checkConfig {
		return nil // agent.New does no I/O: valid, nothing started
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := &http.Server{
		Handler:           newHandler(a, logger, cfg.errorOptions()...),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(agentCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	logger.Info("agent listening", "addr", ln.Addr().String(), "broadcasters", strings.Join(redactAll(cfg.broadcasters), ","),
		"stale_policy", cfg.stalePolicy, "max_staleness", cfg.maxStaleness)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-agentDone:
		agentDone <- err
		runErr = fmt.Errorf("following the broadcaster stopped: %w", err)
		logger.Error("following the broadcaster stopped for good", "err", err)
	case err := <-serveDone:
		serveDone <- err
		runErr = fmt.Errorf("http server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	stopAgent()
	if err := <-agentDone; err != nil && runErr == nil {
		runErr = err
	}
	logger.Info("agent stopped")
	return runErr
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = u
		if p, err := parseURL(u); err == nil {
			out[i] = p
		}
	}
	return out
}

// newRegistry holds the agent's metrics and the Go and process collectors.
func newRegistry(a *agent.Agent) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collectors()...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// errorOptions say how the sidecar answers refused tokens.
func (c *config) errorOptions() []agent.MiddlewareOption {
	opts := []agent.MiddlewareOption{agent.WithRealm(c.realm)}
	if c.genericErrors {
		opts = append(opts, agent.WithGenericErrors())
	}
	return opts
}

// defaultName is the host name, or "agent" when it cannot be read.
func defaultName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "agent"
}
