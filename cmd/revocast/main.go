// Command revocast is the command-line client of a running broadcaster:
// revoke, lift, list and tail talk to its HTTP API through pkg/client;
// keygen makes API keys and thumbprint prints key thumbprints. It does not
// link the NATS server: the broadcaster binary serves, this one talks.
//
// "revocast help" lists the commands; the README's "Command-line client"
// section is the manual.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/revocast/revocast/pkg/client"
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
	// bulkHook, when set, adjusts revoke --jti-file's client.Bulk and
	// progress display before the run (tests shorten the timings).
	bulkHook func(*client.Bulk, *bulkProgress)
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
	exitNotEnforced = 7 // revoke --wait: stored, but not every connected agent applied it in time
)

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "revocast:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// dispatch runs a subcommand; with no command, or --help, it lists them.
func dispatch(ctx context.Context, args []string, env cliEnv) error {
	if len(args) == 0 {
		_ = cmdHelp(ctx, nil, env)
		return usageErr("no command given")
	}
	switch args[0] {
	case "-h", "-help", "--help":
		return cmdHelp(ctx, nil, env)
	case "serve":
		return usageErr("revocast is the client; run the server with the broadcaster binary")
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		return usageErr("unknown command %q; commands: %s", args[0], strings.Join(subcommandNames(), ", "))
	}
	return cmd(ctx, args[1:], env)
}
