package main

// The client subcommands: revoke, lift, list, tail talk to a running
// broadcaster over its HTTP API; keygen makes API keys. This file holds what
// they share: the connection flags, the pkg/client Client they make, and
// how its errors become exit codes. docs/cli.md is their manual.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/cmdutil"
	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/pkg/client"
)

// subcommands talk to a running broadcaster (or, for keygen, to no one).
var subcommands = map[string]func(ctx context.Context, args []string, env cliEnv) error{
	"revoke":     cmdRevoke,
	"lift":       cmdLift,
	"list":       cmdList,
	"tail":       cmdTail,
	"keygen":     cmdKeygen,
	"thumbprint": cmdThumbprint,
}

// help is added here, not in the literal above: it refers to subcommands
// (help COMMAND), which would make an initialisation cycle.
func init() { subcommands["help"] = cmdHelp }

func subcommandNames() []string { return slices.Sorted(maps.Keys(subcommands)) }

// commandSummaries is what "revocast help" prints.
var commandSummaries = map[string]string{
	"revoke":     "post a revocation, or many jtis from a file (--jti-file)",
	"lift":       "lift a revocation by its key, or by its matchers",
	"list":       "list the live revocations",
	"tail":       "follow the event stream",
	"keygen":     "make a new API key and its key file line",
	"thumbprint": "print the thumbprint of each key in PEM or JWKS files (what a kid revocation names)",
	"help":       "this list; help COMMAND shows a command's flags",
}

func cmdHelp(ctx context.Context, args []string, env cliEnv) error {
	if len(args) == 1 && args[0] != "help" {
		if cmd, ok := subcommands[args[0]]; ok {
			return cmd(ctx, []string{"--help"}, env)
		}
	}
	w := env.stdout
	fmt.Fprintf(w, "Usage: revocast COMMAND [flags]\n\nCommands:\n")
	for _, name := range slices.Sorted(maps.Keys(commandSummaries)) {
		fmt.Fprintf(w, "  %-10s %s\n", name, commandSummaries[name])
	}
	fmt.Fprintf(w, "\nRun \"revocast COMMAND --help\" for a command's flags. Client commands read the\n"+
		"token from $REVOCAST_TOKEN or --token-file, and the server from --server ($REVOCAST_SERVER).\n")
	if len(args) > 0 {
		return usageErr("help: unknown command %q", args[0])
	}
	return nil
}

// Defaults of the connection flags.
const (
	defaultServer  = "http://127.0.0.1:8080"
	defaultTimeout = 30 * time.Second
	// tokenEnv holds the bearer token. There is deliberately no flag for the
	// token itself: command lines show up in ps and shell histories.
	tokenEnv = "REVOCAST_TOKEN"
)

// apiConn is a connection to a broadcaster: the common flags and what they
// resolve to.
type apiConn struct {
	server    string
	tokenFile string
	caFile    string
	timeout   time.Duration

	token     string
	tokenFrom string // where the token came from, for messages
	cl        *client.Client
}

// newCmdFlags returns a command's flag set with its usage text. Command
// flags are registered on fs.FlagSet (no environment fallback): an
// exported REVOCAST_SUB must not turn into a --sub by surprise. Only the
// connection flags read the environment.
func newCmdFlags(name, synopsis, about string, env cliEnv) *envflag.Set {
	fs := envflag.New("revocast "+name, env.getenv, env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: revocast %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// addFlags registers the connection flags, which fall back to
// REVOCAST_SERVER, REVOCAST_TOKEN_FILE, REVOCAST_CA_FILE and
// REVOCAST_TIMEOUT.
func (c *apiConn) addFlags(fs *envflag.Set) {
	fs.String(&c.server, "server", defaultServer, "URL of the broadcaster")
	fs.String(&c.tokenFile, "token-file", "", "file holding the bearer token (API key or operator JWT); on the command line it wins over $"+tokenEnv)
	fs.String(&c.caFile, "ca-file", "", "PEM file of the CA certificates trusted for an https server, instead of the system's roots")
	fs.Duration(&c.timeout, "timeout", defaultTimeout, "longest wait for each request's answer")
}

// parseArgs parses args and returns the positional arguments, which may come
// before, between or after the flags ("lift KEY --reason x"); "--" ends the
// flags.
func parseArgs(fs *envflag.Set, args []string) ([]string, error) {
	var pos []string
	// Each round consumes at least one argument, so this ends.
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{exitUsage, err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}

// setup checks the connection flags, reads the token and builds the HTTP
// client. It is called after parsing, so that --help works without a
// token.
func (c *apiConn) setup(fs *envflag.Set, env cliEnv) error {
	if c.timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	raw := strings.TrimSpace(c.server)
	if raw == "" {
		return usageErr("--server is empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErr("--server %q: want a URL such as %s or https://revocast.example.com", redactURL(c.server), defaultServer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return usageErr("--server %q: no query or fragment, just scheme, host and an optional path prefix", u.Redacted())
	}

	if err := c.readToken(fs, env); err != nil {
		return err
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	tr.ResponseHeaderTimeout = c.timeout
	if c.caFile != "" {
		// The same meaning as the servers' --ca-file: these are the only
		// roots trusted.
		pool, err := cmdutil.CAPool(c.caFile)
		if err != nil {
			return usageErr("--%v", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	opts := []client.Option{
		client.WithHTTPClient(&http.Client{
			Transport: tr,
			// A redirected POST turns into a GET, and a redirect to another
			// host would drop the token: better to say where the server is.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}),
		client.WithUserAgent("revocast-cli"),
		client.WithRequestTimeout(c.timeout),
		// One request, one answer: a script decides whether to retry (exit
		// codes); revoke --jti-file retries each batch itself.
		client.WithRetries(0),
	}
	if c.token != "" {
		opts = append(opts, client.WithToken(c.token))
	}
	if c.cl, err = client.New(raw, opts...); err != nil {
		return usageErr("--server: %v", err)
	}
	if c.token != "" && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		fmt.Fprintf(env.stderr, "warning: sending the token over plain http to %s; use https\n", u.Host)
	}
	return nil
}

// readToken takes the token from --token-file given on the command line,
// else from $REVOCAST_TOKEN, else from $REVOCAST_TOKEN_FILE.
func (c *apiConn) readToken(fs *envflag.Set, env cliEnv) error {
	fileOnCommandLine := flagGiven(fs, "token-file")
	var token string
	switch envToken := strings.TrimSpace(env.getenv(tokenEnv)); {
	case c.tokenFile != "" && (fileOnCommandLine || envToken == ""):
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return &exitError{exitAuth, fmt.Errorf("token file: %w", err)}
		}
		token, c.tokenFrom = strings.TrimSpace(string(b)), "the token file "+c.tokenFile
		if token == "" {
			return &exitError{exitAuth, fmt.Errorf("token file %s is empty", c.tokenFile)}
		}
	case envToken != "":
		token, c.tokenFrom = envToken, "$"+tokenEnv
	}
	if token != "" {
		if _, ok := auth.ParseBearer("Bearer " + token); !ok || strings.ContainsAny(token, " \t\r\n") {
			// never echo the token: say where it came from
			return &exitError{exitAuth, fmt.Errorf("the token in %s is not a valid bearer token (one line of letters, digits and -._~+/=)", c.tokenFrom)}
		}
	}
	c.token = token
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// errInterrupted marks a request cut short by the caller's context (Ctrl-C).
var errInterrupted = errors.New("interrupted")

// fail turns an error of the client package into an error carrying the
// exit code: an answer that is not a success (statusError), no answer, or
// the caller giving up (ctx). method and what say what was attempted.
func (c *apiConn) fail(err error, method, what string) error {
	var ae *client.Error
	var te *client.TransportError
	var ee *exitError
	where := c.cl.BaseURL()
	switch {
	case errors.As(err, &ee):
		return err
	case errors.As(err, &ae):
		return c.statusError(ae, what)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &exitError{exitFailure, fmt.Errorf("%s %s: %w", method, where, errInterrupted)}
	case errors.As(err, &te) && te.Timeout:
		return &exitError{exitFailure, fmt.Errorf("%s %s: no answer within %v (--timeout)", method, where, c.timeout)}
	case errors.As(err, &te):
		return &exitError{exitFailure, fmt.Errorf("cannot reach the broadcaster at %s: %w", where, te.Err)}
	}
	return &exitError{exitFailure, fmt.Errorf("%s: %w", what, err)}
}

// statusError turns an answer that is not a success into an error carrying
// the exit code for its status. what says what was attempted ("revoke",
// "lift 4c0f…").
func (c *apiConn) statusError(a *client.Error, what string) error {
	msg := a.Message
	if msg == "" {
		msg = http.StatusText(a.Status)
	}
	status := fmt.Sprintf("%d %s", a.Status, http.StatusText(a.Status))
	switch {
	case a.Status == http.StatusUnauthorized || a.Status == http.StatusForbidden:
		hint := "check $" + tokenEnv + " (or --token-file) and that the key's role allows this (revoke and lift need revoker; list and tail need reader)"
		if c.token == "" {
			hint = "no token was sent: set $" + tokenEnv + " or --token-file"
		} else if c.tokenFrom != "" {
			hint = "check the token from " + c.tokenFrom + " and that the key's role allows this (revoke and lift need revoker; list and tail need reader)"
		}
		return &exitError{exitAuth, fmt.Errorf("%s: refused (%s: %s); %s", what, status, msg, hint)}
	case a.Status == http.StatusNotFound:
		return &exitError{exitNotFound, fmt.Errorf("%s: not found (%s: %s)", what, status, msg)}
	case a.Status == http.StatusBadRequest || a.Status == http.StatusRequestEntityTooLarge || a.Status == http.StatusConflict:
		if a.Field != "" {
			msg += " [field " + a.Field + "]"
		}
		return &exitError{exitInvalid, fmt.Errorf("%s: the server refused the input (%s): %s", what, status, msg)}
	case a.Status == http.StatusTooManyRequests:
		ra := a.Header.Get("Retry-After")
		if ra == "" {
			ra = "a moment"
		} else if _, err := strconv.Atoi(ra); err == nil {
			ra += "s"
		}
		return &exitError{exitRateLimited, fmt.Errorf("%s: rate limited (%s); retry after %s (Retry-After)", what, status, printable(ra))}
	case a.Status >= 300 && a.Status < 400:
		return &exitError{exitFailure, fmt.Errorf("%s: the server redirects (%s) to %s; point --server there", what, status, a.Location)}
	}
	return &exitError{exitFailure, fmt.Errorf("%s: the broadcaster failed (%s): %s", what, status, msg)}
}

// printable makes text from the server safe to print on a terminal: control
// and other non-printing characters (escape sequences, bidi overrides)
// become '?'.
func printable(s string) string {
	if strings.IndexFunc(s, notPrintable) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if notPrintable(r) {
			return '?'
		}
		return r
	}, s)
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// quoteValue prints a value in key=value output: as is when that is
// unambiguous, else Go-quoted (which also escapes anything unprintable).
func quoteValue(s string) string {
	if s == "" || strings.ContainsAny(s, " \"=\\") || strings.IndexFunc(s, notPrintable) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// writeJSONLine writes v compactly on one line.
func writeJSONLine(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// compactLine writes raw JSON compactly on one line.
func compactLine(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return fmt.Errorf("the server sent malformed JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// isTerminal reports whether w is a terminal (for the progress bar).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
