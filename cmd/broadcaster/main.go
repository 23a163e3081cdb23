// Command broadcaster runs the revocast broadcaster: operators post
// revocations to its HTTP API, they are stored in a NATS JetStream log
// (embedded by default), and agents follow them as Server-Sent Events.
//
// Every flag falls back to a REVOCAST_* environment variable; run
// "broadcaster --help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/cmdutil"
	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := cliEnv{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(exitCode(dispatch(ctx, os.Args[1:], env), os.Stderr))
}

// cliEnv is what a command may touch of the outside world, so that tests
// can run commands in-process.
type cliEnv struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exitError carries the exit code a command wants.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes of the server.
const (
	exitOK      = 0
	exitFailure = 1 // the server stopped on an error
	exitUsage   = 2 // wrong flags, arguments or configuration
)

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "broadcaster:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// clientCommands are the commands that moved to the revocast binary.
var clientCommands = []string{"help", "keygen", "lift", "list", "revoke", "tail", "thumbprint"}

// dispatch runs the server when the first argument is a flag (or there is
// none, or it is "serve"). The client commands live in the revocast binary.
func dispatch(ctx context.Context, args []string, env cliEnv) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if args[0] == "serve" {
			return run(ctx, args[1:], env.getenv, env.stdout, env.stderr)
		}
		if slices.Contains(clientCommands, args[0]) {
			return &exitError{exitUsage, fmt.Errorf("%q is a command of the client: run \"revocast %s\"", args[0], args[0])}
		}
		return &exitError{exitUsage, fmt.Errorf("unknown command %q: broadcaster only serves (\"broadcaster [serve] [flags]\"); the client is revocast", args[0])}
	}
	return run(ctx, args, env.getenv, env.stdout, env.stderr)
}

// run parses the server's flags and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	sf, err := parseFlags(args, getenv, stderr)
	if sf.flagsJSON {
		return writeFlagsJSON(stdout)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	logger, err := cmdutil.NewLogger(stderr, sf.log.level, sf.log.format)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if sf.checkConfig {
		return checkConfig(sf, logger)
	}
	cfg, background, err := sf.config(logger)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	// Only a configuration that is whole starts anything: a refused one
	// leaves no goroutine behind.
	background(ctx)
	if err := broadcaster.Run(ctx, cfg); err != nil {
		if errors.Is(err, broadcaster.ErrInsecure) || errors.Is(err, broadcaster.ErrConfig) {
			return &exitError{exitUsage, err}
		}
		return err
	}
	return nil
}

// checkConfig is --check-config: it builds the configuration as run does,
// reading every file, and runs the checks of broadcaster.New and those of
// Start that need no listener, then returns without starting anything: the
// background work config returns (watching the key file, refreshing JWKS)
// is never run.
func checkConfig(sf *serverFlags, logger *slog.Logger) error {
	cfg, _, err := sf.config(logger)
	if err == nil {
		err = broadcaster.CheckConfig(cfg)
	}
	if err != nil {
		return &exitError{exitUsage, err}
	}
	return nil
}

type logOptions struct {
	level  string
	format string
}

// serverFlags is what the server's flags hold before files are read.
type serverFlags struct {
	cfg broadcaster.Config
	// nats is the JetStream log's configuration: cfg.Backend once read.
	nats    natslog.Config
	log     logOptions
	apiKeys string
	auth    verifierFlags // operator JWTs
	token   verifierFlags // tokens posted to POST /v1/revoke
	// roleClaim is the operator JWT claim holding "reader" or "revoker".
	roleClaim string
	// clusterSecretFile holds the routes' shared secret.
	clusterSecretFile string
	// maxConnsPerAddr is the flag's value: 0 means no limit.
	maxConnsPerAddr int
	// flagsJSON: print the flags and exit (--flags-json).
	flagsJSON bool
	// checkConfig: validate the configuration and exit (--check-config).
	checkConfig bool
}

// verifierFlags configure a JWT verifier.
type verifierFlags struct {
	jwks       string
	publicKeys []string
	hmacFile   string
	issuers    []string
	audiences  []string
	algs       []string
}

func (v verifierFlags) configured() bool {
	return v.jwks != "" || len(v.publicKeys) > 0 || v.hmacFile != ""
}

// config builds the server configuration: reads key files, builds
// verifiers. It starts nothing: background starts what runs beside the
// server (key set refreshes, the API key file watcher) until its context
// ends.
func (sf *serverFlags) config(logger *slog.Logger) (cfg broadcaster.Config, background func(context.Context), err error) {
	var tasks []func(context.Context)
	background = func(ctx context.Context) {
		for _, task := range tasks {
			go task(ctx)
		}
	}
	cfg = sf.cfg
	cfg.Logger = logger
	switch {
	case sf.maxConnsPerAddr < 0:
		return cfg, nil, errors.New("max-conns-per-addr must not be negative (0: no limit)")
	case sf.maxConnsPerAddr == 0:
		cfg.MaxConnsPerAddr = -1
	default:
		cfg.MaxConnsPerAddr = sf.maxConnsPerAddr
	}
	var keys *auth.KeyStore
	if sf.apiKeys != "" {
		ks, err := auth.LoadKeyFile(sf.apiKeys)
		if err != nil {
			return cfg, nil, err
		}
		if ks.Len() == 0 {
			return cfg, nil, fmt.Errorf("api-keys %s holds no key", sf.apiKeys)
		}
		keys = ks
	}
	operator, err := sf.operatorVerifier(logger, &tasks)
	if err != nil {
		return cfg, nil, err
	}
	cfg.Auth = auth.New(keys, operator)
	if keys != nil {
		// A key removed from the file stops working without a restart:
		// on SIGHUP, and within keyFileCheckInterval of the change.
		a := cfg.Auth
		tasks = append(tasks, func(ctx context.Context) {
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			a.WatchKeyFile(ctx, sf.apiKeys, keyFileCheckInterval, hup, logger)
		})
	}
	if sf.clusterSecretFile != "" {
		secret, err := os.ReadFile(sf.clusterSecretFile)
		if err != nil {
			return cfg, nil, fmt.Errorf("cluster-secret-file: %w", err)
		}
		sf.nats.ClusterSecret = strings.TrimSpace(string(secret))
		if len(sf.nats.ClusterSecret) < 16 {
			return cfg, nil, fmt.Errorf("cluster-secret-file %s: at least 16 characters are required", sf.clusterSecretFile)
		}
	}
	sf.nats.Logger = logger
	cfg.Backend = sf.nats
	if cfg.DemoCredentials, err = sf.demoCredentials(); err != nil {
		return cfg, nil, err
	}
	if cfg.TokenVerifier, err = sf.tokenVerifier(logger, &tasks); err != nil {
		return cfg, nil, err
	}
	return cfg, background, nil
}

func parseFlags(args []string, getenv func(string) string, output io.Writer) (*serverFlags, error) {
	sf := &serverFlags{}
	fs := newFlagSet(sf, getenv, output)
	if err := fs.Parse(args); err != nil {
		return sf, err
	}
	if sf.flagsJSON {
		return sf, nil
	}
	if fs.NArg() > 0 {
		return sf, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return sf, nil
}

// flagNames lists every flag, for the README test.
func flagNames() []string {
	return newFlagSet(&serverFlags{}, func(string) string { return "" }, io.Discard).Names()
}

// writeFlagsJSON prints the flags for --flags-json, their defaults read
// without the environment.
func writeFlagsJSON(w io.Writer) error {
	return newFlagSet(&serverFlags{}, func(string) string { return "" }, io.Discard).WriteFlagsJSON(w)
}

// defaultDataDir is --data's default.
const defaultDataDir = "./data"

func newFlagSet(sf *serverFlags, getenv func(string) string, output io.Writer) *envflag.Set {
	cfg := &sf.cfg
	fs := envflag.New("broadcaster", getenv, output)
	fs.String(&cfg.Addr, "addr", broadcaster.DefaultAddr, "HTTP listen address")
	fs.String(&sf.nats.DataDir, "data", defaultDataDir, "data directory of the embedded NATS server")
	fs.Duration(&cfg.MaxTokenLifetime, "max-token-lifetime", events.DefaultMaxTokenLifetime, "longest lifetime of the tokens being revoked: the default expiry of a revocation")
	fs.Duration(&cfg.ExpiryGrace, "expiry-grace", events.DefaultExpiryGrace, "how long past expires_at a revocation stays in the log and the full state (agents' leeway must stay below it)")
	fs.Duration(&cfg.Heartbeat, "heartbeat", broadcaster.DefaultHeartbeat, "interval of ': ping' comments on idle streams, sent only while this node is caught up with the stream leader (checked once per interval)")
	fs.Duration(&cfg.Retry, "sse-retry", broadcaster.DefaultRetry, "reconnection delay advertised to SSE clients (retry:)")
	fs.List(&cfg.CORSOrigins, "cors-origins", nil, "origins allowed to read /v1/events from a browser (or *); listed origins (not *) may also write")

	// access
	fs.String(&sf.apiKeys, "api-keys", "", "file of API keys: one \"<name> <role> <sha256>\" per line (see the keygen command)")
	fs.String(&sf.auth.jwks, "auth-jwks", "", "JWKS URL of the issuer of operator JWTs")
	fs.List(&sf.auth.publicKeys, "auth-public-key", nil, "PEM public key file(s) that sign operator JWTs (repeatable)")
	fs.List(&sf.auth.issuers, "auth-issuer", nil, "required iss of operator JWTs")
	fs.List(&sf.auth.audiences, "auth-audience", nil, "required aud of operator JWTs")
	fs.List(&sf.auth.algs, "auth-algs", nil, "algorithms accepted for operator JWTs (default: those of the configured keys)")
	fs.String(&sf.roleClaim, "auth-role-claim", "revocast_role", "claim of operator JWTs holding their role (reader or revoker; a string or a list)")
	fs.Bool(&cfg.Insecure, "insecure", false, "allow beyond loopback: listening without credentials (and any Host), cluster routes without a secret or TLS, demo credentials (each logged as a warning)")
	fs.Bool(&cfg.GenericAuthErrors, "generic-auth-errors", false, "answer every 401 with the same text, not saying whether a credential was missing, unknown, expired or revoked")
	fs.Bool(&cfg.PublicEvents, "public-events", false, "let anyone follow /v1/events even with credentials configured")
	fs.String(&cfg.TLSCertFile, "tls-cert", "", "TLS certificate (PEM) to serve HTTPS and HTTP/2")
	fs.String(&cfg.TLSKeyFile, "tls-key", "", "TLS private key (PEM)")
	fs.String(&sf.token.jwks, "token-jwks", "", "JWKS URL for verifying tokens posted to POST /v1/revoke")
	fs.List(&sf.token.publicKeys, "token-public-key", nil, "PEM public key file(s) for verifying tokens posted to POST /v1/revoke")
	fs.String(&sf.token.hmacFile, "token-hmac-secret-file", "", "HMAC secret file for verifying tokens posted to POST /v1/revoke")
	fs.List(&sf.token.issuers, "token-issuer", nil, "required iss of tokens posted to POST /v1/revoke")
	fs.List(&sf.token.audiences, "token-audience", nil, "required aud of tokens posted to POST /v1/revoke")
	fs.List(&sf.token.algs, "token-algs", nil, "algorithms accepted for tokens posted to POST /v1/revoke (default: those of the configured keys)")

	// limits
	fs.Int64(&cfg.MaxBodyBytes, "max-body-bytes", broadcaster.DefaultMaxBodyBytes, "largest request body accepted (413 beyond)")
	fs.Int(&cfg.MaxBatch, "max-batch", broadcaster.DefaultMaxBatch, "most revocations in one batch (400 beyond)")
	fs.Float64(&cfg.RateLimit, "rate-limit", broadcaster.DefaultRateLimit, "requests per second per credential on the revocation API (0: no limit)")
	fs.Int(&cfg.RateBurst, "rate-burst", broadcaster.DefaultRateBurst, "burst of the per-credential rate limit")
	fs.Int(&cfg.MaxSubscribers, "max-subscribers", broadcaster.DefaultMaxSubscribers, "concurrent SSE subscribers (503 beyond)")
	fs.Int(&cfg.MaxSubscribersPerPrincipal, "max-subscribers-per-principal", 0, "concurrent SSE subscribers of one credential, or of one address without credentials (0: three quarters of --max-subscribers)")
	fs.Uint64(&cfg.MaxLag, "max-lag", hub.DefaultMaxLag, "stream sequences a subscriber may trail the head by before it is disconnected as slow")
	fs.Duration(&cfg.ReadTimeout, "read-timeout", broadcaster.DefaultReadTimeout, "longest a request may take to arrive, headers and body, from its first byte (authorised streams excepted)")
	fs.Int(&sf.maxConnsPerAddr, "max-conns-per-addr", broadcaster.DefaultMaxConnsPerAddr, "connections one client IP address may hold open, authorised streams excepted (closed beyond; 0: no limit)")
	fs.Duration(&cfg.WriteTimeout, "write-timeout", broadcaster.DefaultWriteTimeout, "longest a write to a subscriber may block before it is disconnected")

	// NATS
	fs.List(&sf.nats.URLs, "nats-url", nil, "URL(s) of an external NATS deployment; empty runs NATS embedded")
	fs.String(&sf.nats.CredsFile, "nats-creds", "", "NATS credentials file (external NATS)")
	fs.String(&sf.nats.NKeyFile, "nats-nkey", "", "NATS NKey seed file (external NATS)")
	fs.String(&sf.nats.TLSCAFile, "nats-ca", "", "CA (PEM) of an external NATS deployment's TLS")
	fs.String(&sf.nats.TLSCertFile, "nats-cert", "", "client certificate (PEM) for an external NATS deployment")
	fs.String(&sf.nats.TLSKeyFile, "nats-key", "", "client key (PEM) for an external NATS deployment")
	fs.String(&sf.nats.ServerName, "server-name", "revocast", "name of the embedded NATS server: stable and unique in a cluster")
	fs.String(&sf.nats.ClusterName, "cluster-name", "", "cluster of embedded NATS servers to form or join (empty: standalone)")
	fs.String(&sf.nats.ClusterAddr, "cluster-addr", "", "host:port the embedded NATS server listens on for cluster routes")
	fs.List(&sf.nats.Routes, "routes", nil, "cluster peers, nats://host:port (repeatable)")
	fs.String(&sf.clusterSecretFile, "cluster-secret-file", "", "file holding a secret every cluster route must present (the same on every node; required beyond loopback unless --cluster-tls-*)")
	fs.String(&sf.nats.ClusterTLSCertFile, "cluster-tls-cert", "", "certificate (PEM) cluster routes present: mutual TLS on the routes, with --cluster-tls-key and --cluster-tls-ca")
	fs.String(&sf.nats.ClusterTLSKeyFile, "cluster-tls-key", "", "private key (PEM) of --cluster-tls-cert")
	fs.String(&sf.nats.ClusterTLSCAFile, "cluster-tls-ca", "", "CA (PEM) that must sign every cluster route's certificate, in both directions")
	fs.Int(&sf.nats.Replicas, "replicas", 1, "replicas of the stream (3 in a cluster of three)")
	fs.Duration(&sf.nats.PublishTimeout, "publish-timeout", natslog.DefaultPublishTimeout, "longest a write waits for its JetStream acknowledgement before answering 503")

	fs.String(&cfg.PprofAddr, "pprof-addr", "", "loopback host:port serving net/http/pprof (empty: none)")
	fs.String(&sf.log.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.String(&sf.log.format, "log-format", "text", "log format: text or json")
	fs.AddFlagsJSON(&sf.flagsJSON)
	fs.AddCheckConfig(&sf.checkConfig)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: broadcaster [serve] [flags]\n\n"+
			"Runs the revocast broadcaster. Each flag falls back to the environment variable in parentheses.\n"+
			"The client commands (revoke, lift, list, tail, keygen, thumbprint) are in the revocast binary.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}
