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
	"strings"
	"syscall"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events"
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

// Exit codes scripts can rely on; the README lists them.
const (
	exitOK          = 0
	exitFailure     = 1 // the request failed: server error, unreachable, not acknowledged
	exitUsage       = 2 // wrong flags or arguments
	exitNotFound    = 3 // the revocation does not exist (lift, get)
	exitAuth        = 4 // missing or refused credentials (401, 403)
	exitInvalid     = 5 // the server refused the input (400, 413)
	exitRateLimited = 6 // 429: slow down and retry
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

// dispatch runs a subcommand, or the server when the first argument is a
// flag (or there is none, or it is "serve").
func dispatch(ctx context.Context, args []string, env cliEnv) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if args[0] == "serve" {
			return run(ctx, args[1:], env.getenv, env.stdout, env.stderr)
		}
		cmd, ok := subcommands[args[0]]
		if !ok {
			return &exitError{exitUsage, fmt.Errorf("unknown command %q; commands: serve, %s", args[0], strings.Join(subcommandNames(), ", "))}
		}
		return cmd(ctx, args[1:], env)
	}
	return run(ctx, args, env.getenv, env.stdout, env.stderr)
}

// run parses the server's flags and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, logOpts, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	logger, err := newLogger(stderr, logOpts)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	return broadcaster.Run(ctx, cfg)
}

type logOptions struct {
	level  string
	format string
}

func parseFlags(args []string, getenv func(string) string, output io.Writer) (broadcaster.Config, logOptions, error) {
	var cfg broadcaster.Config
	var lo logOptions
	fs := newFlagSet(&cfg, &lo, getenv, output)
	if err := fs.Parse(args); err != nil {
		return cfg, lo, err
	}
	if fs.NArg() > 0 {
		return cfg, lo, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return cfg, lo, nil
}

// flagNames lists every flag, for the README test.
func flagNames() []string {
	var cfg broadcaster.Config
	var lo logOptions
	return newFlagSet(&cfg, &lo, func(string) string { return "" }, io.Discard).Names()
}

func newFlagSet(cfg *broadcaster.Config, lo *logOptions, getenv func(string) string, output io.Writer) *envflag.Set {
	fs := envflag.New("broadcaster", getenv, output)
	fs.String(&cfg.Addr, "addr", broadcaster.DefaultAddr, "HTTP listen address")
	fs.String(&cfg.DataDir, "data", broadcaster.DefaultDataDir, "data directory of the embedded NATS server")
	fs.List(&cfg.NATS.URLs, "nats-url", nil, "URL(s) of an external NATS deployment; empty runs NATS embedded")
	fs.Duration(&cfg.MaxTokenLifetime, "max-token-lifetime", events.DefaultMaxTokenLifetime, "longest lifetime of the tokens being revoked: the default expiry of a revocation")
	fs.Duration(&cfg.Heartbeat, "heartbeat", broadcaster.DefaultHeartbeat, "interval of ': ping' comments on idle streams")
	fs.Duration(&cfg.Retry, "sse-retry", broadcaster.DefaultRetry, "reconnection delay advertised to SSE clients (retry:)")
	fs.List(&cfg.CORSOrigins, "cors-origins", nil, "origins allowed to read /v1/events from a browser (or *)")
	fs.Int64(&cfg.MaxBodyBytes, "max-body-bytes", broadcaster.DefaultMaxBodyBytes, "largest request body accepted (413 beyond)")
	fs.Int(&cfg.MaxBatch, "max-batch", broadcaster.DefaultMaxBatch, "most revocations in one batch (400 beyond)")
	fs.Uint64(&cfg.MaxLag, "max-lag", hub.DefaultMaxLag, "stream sequences a subscriber may trail the head by before it is disconnected as slow")
	fs.Duration(&cfg.WriteTimeout, "write-timeout", broadcaster.DefaultWriteTimeout, "longest a write to a subscriber may block before it is disconnected")
	fs.String(&lo.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.String(&lo.format, "log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: broadcaster [flags]\n\nRuns the revocast broadcaster. Each flag falls back to the environment variable in parentheses.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(w io.Writer, o logOptions) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.level)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", o.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", o.format)
}
