package main

// The client subcommands: revoke, lift, list, tail talk to a running
// broadcaster over its HTTP API; keygen makes API keys. This file holds what
// they share: the connection flags, the HTTP client, and how HTTP answers
// become exit codes. docs/cli.md is their manual.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/revocast/revocast/internal/envflag"
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
	// maxAnswerBytes bounds what is read of one HTTP answer.
	maxAnswerBytes = 256 << 20
)

// apiConn is a connection to a broadcaster: the common flags and what they
// resolve to.
type apiConn struct {
	server    string
	tokenFile string
	caFile    string
	timeout   time.Duration

	base      *url.URL
	token     string
	tokenFrom string // where the token came from, for messages
	client    *http.Client
	transport *http.Transport
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
	fs.String(&c.caFile, "ca-file", "", "PEM file of a CA to trust for an https server, besides the system's")
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
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c.base = u

	if err := c.readToken(fs, env); err != nil {
		return err
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	tr.ResponseHeaderTimeout = c.timeout
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return usageErr("--ca-file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return usageErr("--ca-file %s: no PEM certificate in it", c.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c.transport = tr
	c.client = &http.Client{
		Transport: tr,
		// A redirected POST turns into a GET, and a redirect to another
		// host would drop the token: better to say where the server is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
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

// endpoint is the URL of path (which starts with /v1/…) on the server.
func (c *apiConn) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (c *apiConn) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// apiAnswer is a complete HTTP answer.
type apiAnswer struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and reads the whole answer, within --timeout. A
// failure to get an answer is an exitFailure error that names the server.
func (c *apiConn) do(ctx context.Context, method, path string, q url.Values, body []byte, header map[string]string) (*apiAnswer, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, c.endpoint(path, q), rd)
	if err != nil {
		return nil, &exitError{exitUsage, fmt.Errorf("build request: %w", err)}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "revocast-cli")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c.authorize(req)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, rctx, method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, c.transportError(ctx, rctx, method, err)
	}
	return &apiAnswer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// errInterrupted marks a request cut short by the caller's context (Ctrl-C).
var errInterrupted = errors.New("interrupted")

// transportError explains a request that got no answer: the caller gave up
// (ctx), --timeout passed (rctx), or the server could not be reached.
func (c *apiConn) transportError(ctx, rctx context.Context, method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the url.Error repeats the URL, which may hold a password
	}
	where := c.base.Redacted()
	switch {
	case ctx.Err() != nil:
		return &exitError{exitFailure, fmt.Errorf("%s %s: %w", method, where, errInterrupted)}
	case rctx.Err() != nil:
		return &exitError{exitFailure, fmt.Errorf("%s %s: no answer within %v (--timeout)", method, where, c.timeout)}
	}
	return &exitError{exitFailure, fmt.Errorf("cannot reach the broadcaster at %s: %w", where, err)}
}

// apiErrorBody is the JSON body of the broadcaster's error answers.
type apiErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// statusError turns an answer that is not a success into an error carrying
// the exit code for its status. what says what was attempted ("revoke",
// "lift 4c0f…").
func (c *apiConn) statusError(a *apiAnswer, what string) error {
	var body apiErrorBody
	_ = json.Unmarshal(a.body, &body)
	msg := printable(body.Error)
	if msg == "" {
		msg = printable(strings.TrimSpace(string(a.body)))
		if len(msg) > 200 || msg == "" {
			msg = http.StatusText(a.status)
		}
	}
	status := fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))
	switch {
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		hint := "check $" + tokenEnv + " (or --token-file) and that the key's role allows this (revoke and lift need revoker; list and tail need reader)"
		if c.token == "" {
			hint = "no token was sent: set $" + tokenEnv + " or --token-file"
		} else if c.tokenFrom != "" {
			hint = "check the token from " + c.tokenFrom + " and that the key's role allows this (revoke and lift need revoker; list and tail need reader)"
		}
		return &exitError{exitAuth, fmt.Errorf("%s: refused (%s: %s); %s", what, status, msg, hint)}
	case a.status == http.StatusNotFound:
		return &exitError{exitNotFound, fmt.Errorf("%s: not found (%s: %s)", what, status, msg)}
	case a.status == http.StatusBadRequest || a.status == http.StatusRequestEntityTooLarge || a.status == http.StatusConflict:
		if body.Field != "" {
			msg += " [field " + printable(body.Field) + "]"
		}
		return &exitError{exitInvalid, fmt.Errorf("%s: the server refused the input (%s): %s", what, status, msg)}
	case a.status == http.StatusTooManyRequests:
		ra := a.header.Get("Retry-After")
		if ra == "" {
			ra = "a moment"
		} else if _, err := strconv.Atoi(ra); err == nil {
			ra += "s"
		}
		return &exitError{exitRateLimited, fmt.Errorf("%s: rate limited (%s); retry after %s (Retry-After)", what, status, printable(ra))}
	case a.status >= 300 && a.status < 400:
		return &exitError{exitFailure, fmt.Errorf("%s: the server redirects (%s) to %s; point --server there", what, status, printable(a.header.Get("Location")))}
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
