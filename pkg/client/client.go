package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// Defaults of a Client.
const (
	DefaultRetries       = 3
	DefaultRetryBase     = 500 * time.Millisecond
	DefaultMaxRetryDelay = 30 * time.Second
	// MaxAnswerBytes bounds what is read of one answer.
	MaxAnswerBytes = 256 << 20
)

// Client talks to one broadcaster (or a load balancer in front of a
// cluster). Make one with New; it is safe for concurrent use.
type Client struct {
	base          *url.URL
	token         string
	hc            *http.Client
	log           *slog.Logger
	userAgent     string
	timeout       time.Duration
	retries       int
	retryBase     time.Duration
	maxRetryDelay time.Duration
	onRetry       func(RetryInfo)
}

// RetryInfo describes a retry about to be made, for WithRetryHook.
type RetryInfo struct {
	Method, Path string
	Attempt      int           // 1 for the first retry
	Delay        time.Duration // the wait before it
	Err          error         // why the previous attempt failed
}

// Option configures New.
type Option func(*Client) error

// WithToken sets the bearer credential (an API key or an operator JWT)
// sent as "Authorization: Bearer <token>".
func WithToken(token string) Option {
	return func(c *Client) error {
		if strings.ContainsAny(token, " \t\r\n") {
			return errors.New("client: the token must be one line without spaces")
		}
		c.token = token
		return nil
	}
}

// WithHTTPClient sets the HTTP client. Its Timeout should be zero (Tail
// streams for ever; use WithRequestTimeout for the other requests).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: nil HTTP client")
		}
		c.hc = hc
		return nil
	}
}

// WithLogger sets where the client logs retries (at debug level) and
// reconnections of Tail. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l != nil {
			c.log = l
		}
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error { c.userAgent = ua; return nil }
}

// WithRequestTimeout bounds each attempt of a request, answer included
// (not Tail). Zero, the default, leaves it to the context.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d < 0 {
			return errors.New("client: negative request timeout")
		}
		c.timeout = d
		return nil
	}
}

// WithRetries sets how many times a failed request is retried (0: never).
func WithRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return errors.New("client: negative retries")
		}
		c.retries = n
		return nil
	}
}

// WithRetryBackoff sets the delay before the first retry, doubled for each
// further one (with jitter), and its cap. A Retry-After from the server
// lengthens the delay up to the cap.
func WithRetryBackoff(base, maxDelay time.Duration) Option {
	return func(c *Client) error {
		if base <= 0 || maxDelay < base {
			return errors.New("client: want 0 < base <= max retry delay")
		}
		c.retryBase, c.maxRetryDelay = base, maxDelay
		return nil
	}
}

// WithRetryHook sets a function called before each retry.
func WithRetryHook(f func(RetryInfo)) Option {
	return func(c *Client) error { c.onRetry = f; return nil }
}

// New returns a client of the broadcaster at baseURL: scheme, host and an
// optional path prefix ("https://revocast.example.com", or
// "http://127.0.0.1:8080/revocast" behind a proxy).
func New(baseURL string, opts ...Option) (*Client, error) {
	raw := strings.TrimSpace(baseURL)
	if raw != "" && !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port][/prefix]", redact(baseURL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: base URL %q: no query or fragment", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base:          u,
		log:           slog.New(slog.DiscardHandler),
		userAgent:     "revocast-client",
		retries:       DefaultRetries,
		retryBase:     DefaultRetryBase,
		maxRetryDelay: DefaultMaxRetryDelay,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.hc == nil {
		c.hc = &http.Client{
			// A redirected POST turns into a GET, and a redirect to another
			// host would drop the token: report it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// BaseURL is the broadcaster's URL, any password redacted.
func (c *Client) BaseURL() string { return c.base.Redacted() }

// HasToken reports whether a bearer credential is sent.
func (c *Client) HasToken() bool { return c.token != "" }

func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// URL is the absolute URL of path (which starts with /v1/…) on the server.
func (c *Client) URL(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Request is one HTTP request to the API, for Do.
type Request struct {
	Method string
	Path   string // /v1/…
	Query  url.Values
	Body   []byte // sent as application/json when not nil
	Header http.Header
	// IdempotencyKey, when set, is sent as Idempotency-Key on every
	// attempt, which makes retrying a write safe.
	IdempotencyKey string
	// Retry allows retries on 408, 429, 5xx and network failures. Without
	// an IdempotencyKey a write is only retried on 429 and 503 (refused
	// before it was stored).
	Retry bool
}

// Response is a complete HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// TransportError is a request that got no answer: the server could not be
// reached, or the attempt timed out (WithRequestTimeout).
type TransportError struct {
	Method, URL string // URL redacted
	Timeout     bool
	Err         error
}

func (e *TransportError) Error() string {
	if e.Timeout {
		return fmt.Sprintf("%s %s: no answer in time", e.Method, e.URL)
	}
	return fmt.Sprintf("%s %s: %v", e.Method, e.URL, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Do sends req (with retries when req.Retry) and returns the answer,
// whatever its status: the typed methods turn failures into *Error; Do is
// for callers that want the raw answer. The error is a *TransportError, or
// the context's error when ctx ended.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, req)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !req.Retry || attempt >= c.retries || !c.retryable(req, resp, err) {
			return resp, err
		}
		var wait time.Duration
		cause := err
		if resp != nil {
			e := errorOf(req.Method, req.Path, resp)
			wait, cause = e.RetryAfter, e
		}
		delay := c.retryBase << min(attempt, 10)
		delay = min(max(delay/2+mrand.N(delay/2+1), wait), c.maxRetryDelay)
		info := RetryInfo{Method: req.Method, Path: req.Path, Attempt: attempt + 1, Delay: delay, Err: cause}
		c.log.Debug("retrying", "method", req.Method, "path", req.Path, "attempt", attempt+1, "delay", delay, "err", cause)
		if c.onRetry != nil {
			c.onRetry(info)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Client) retryable(req Request, resp *Response, err error) bool {
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	if err != nil {
		return !write || req.IdempotencyKey != ""
	}
	switch s := resp.Status; {
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		return true
	case s == http.StatusRequestTimeout || s >= 500:
		return !write || req.IdempotencyKey != ""
	}
	return false
}

func (c *Client) once(ctx context.Context, r Request) (*Response, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.URL(r.Path, r.Query), body)
	if err != nil {
		return nil, fmt.Errorf("client: build request: %w", err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if r.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	if r.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, r.Method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	if err != nil {
		return nil, c.transportError(ctx, r.Method, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

func (c *Client) transportError(ctx context.Context, method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the url.Error repeats the URL, which may hold a password
	}
	return &TransportError{Method: method, URL: c.base.Redacted(), Timeout: errors.Is(ctx.Err(), context.DeadlineExceeded), Err: err}
}

// apiError is the JSON body of the broadcaster's error answers.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// errorOf makes the *Error of an answer that is not a success.
func errorOf(method, path string, r *Response) *Error {
	var body apiError
	_ = json.Unmarshal(r.Body, &body)
	msg := printable(body.Error)
	if msg == "" {
		msg = printable(strings.TrimSpace(string(r.Body)))
		if len(msg) > 200 {
			msg = ""
		}
	}
	e := &Error{Method: method, Path: path, Status: r.Status, Message: msg, Field: printable(body.Field),
		RetryAfter: parseRetryAfter(r.Header.Get("Retry-After"), time.Now()), Body: r.Body}
	if r.Status >= 300 && r.Status < 400 {
		e.Location = printable(r.Header.Get("Location"))
	}
	return e
}

// AsError returns the *Error of an answer that is not a 2xx, nil for a
// success.
func AsError(method, path string, r *Response) error {
	if r.Status >= 200 && r.Status < 300 {
		return nil
	}
	return errorOf(method, path, r)
}

// printable makes text from the server safe to print on a terminal.
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
