package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of a Client.
const (
	// DefaultInitialBackoff is the base reconnection delay when the server
	// has not sent a retry field.
	DefaultInitialBackoff = 1 * time.Second
	// DefaultMaxBackoff caps the exponential backoff (see WithMaxDelay for
	// a cap on every delay).
	DefaultMaxBackoff = 30 * time.Second
	// DefaultAuthBackoff is the delay after a 401, 403 or other 4xx answer:
	// retrying fast cannot fix credentials or a request the server rejects,
	// but an operator may fix them, so the client keeps trying slowly.
	DefaultAuthBackoff = 30 * time.Second
	// DefaultConnectTimeout bounds the TCP dial and, separately, the TLS
	// handshake of the default HTTP client.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers in
	// the default HTTP client. The body has no timeout: a stream is meant to
	// stay open.
	DefaultResponseHeaderTimeout = 30 * time.Second
)

const (
	// minDelay is the floor of every reconnection delay, so that a server
	// sending "retry: 0" cannot turn the client into a busy loop.
	minDelay = 10 * time.Millisecond
	// stableAfter is how long a connection must stay up, even without
	// events, to count as healthy and reset the backoff.
	stableAfter = time.Minute
	// maxRetryAfter caps a server's Retry-After so that one misconfigured
	// answer cannot silence the stream for hours.
	maxRetryAfter = 5 * time.Minute
	// maxDrain is how much of an error response body is read so that its
	// connection can be reused.
	maxDrain = 4 << 10
)

var (
	// ErrNoContent is returned by Run when a server answers 204 No Content,
	// which the standard defines as "stop reconnecting".
	ErrNoContent = errors.New("sse: server answered 204 No Content: stop")
	// ErrUnauthorized is wrapped by a StatusError for 401 and 403 answers.
	ErrUnauthorized = errors.New("sse: unauthorized")
	// ErrUnexpectedContentType is reported (to the disconnect hook) for a 200
	// answer that is not text/event-stream; the client retries.
	ErrUnexpectedContentType = errors.New("sse: response is not text/event-stream")
	// ErrIdleTimeout is reported when nothing arrived within the idle
	// timeout (see WithIdleTimeout); the client reconnects.
	ErrIdleTimeout = errors.New("sse: stream idle for too long")
	// ErrInvalidURL is returned by NewClient for no URL, or for one that is
	// not an absolute http or https URL.
	ErrInvalidURL = errors.New("sse: invalid stream URL")
	// ErrAlreadyRunning is returned by Run while another call to Run on the
	// same Client has not returned.
	ErrAlreadyRunning = errors.New("sse: Client.Run already running")
)

// StatusError reports an HTTP answer other than 200. URL is the stream URL
// with any password redacted.
type StatusError struct {
	URL        string
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sse: %s answered %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Unwrap lets callers test with errors.Is: ErrUnauthorized for 401 and 403,
// ErrNoContent for 204.
func (e *StatusError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusNoContent:
		return ErrNoContent
	}
	return nil
}

type clientConfig struct {
	httpClient   *http.Client
	requestHook  func(*http.Request)
	lastEventID  string
	initial      time.Duration
	max          time.Duration
	authBackoff  time.Duration
	idleTimeout  time.Duration
	logger       *slog.Logger
	onConnect    func(string)
	onDisconnect func(string, error)
	onActivity   func(time.Time)
	maxDelay     time.Duration // caps every delay; 0: no such cap
	startIndex   int           // < 0: random; tests pin it
	// sleep waits d or until ctx is done (false).
	sleep func(ctx context.Context, d time.Duration) bool
}

// ClientOption configures NewClient.
type ClientOption func(*clientConfig)

// WithHTTPClient sets the HTTP client. It should have no overall Timeout
// (that would cut every stream after it) but bounded dial, TLS and response
// header times, like the default one.
func WithHTTPClient(c *http.Client) ClientOption {
	return func(cfg *clientConfig) {
		if c != nil {
			cfg.httpClient = c
		}
	}
}

// WithRequestHook lets the caller change every request before it is sent,
// for example to add an Authorization header that may have been refreshed
// since the last connection.
func WithRequestHook(f func(*http.Request)) ClientOption {
	return func(cfg *clientConfig) { cfg.requestHook = f }
}

// WithLastEventID sets the ID to resume from on the first connection.
func WithLastEventID(id string) ClientOption {
	return func(cfg *clientConfig) { cfg.lastEventID = id }
}

// WithBackoff sets the base delay (used until the server sends a retry
// field) and the cap of the exponential backoff, which only failures other
// than refused connections make grow (see Run). Non-positive values keep
// the defaults; a cap below the base is raised to it.
func WithBackoff(initial, maxDelay time.Duration) ClientOption {
	return func(cfg *clientConfig) {
		if initial > 0 {
			cfg.initial = initial
		}
		if maxDelay > 0 {
			cfg.max = maxDelay
		}
	}
}

// WithMaxDelay caps every reconnection delay, whatever asks for a longer
// one: the backoff, the server's retry field, a Retry-After, the auth
// backoff. A caller that must hear from the server within some time (a
// staleness limit) sets it well below that time. d <= 0 (the default)
// leaves each delay to its own cap; a d below 10ms is raised to 10ms.
func WithMaxDelay(d time.Duration) ClientOption {
	return func(cfg *clientConfig) {
		if d > 0 {
			cfg.maxDelay = max(d, minDelay)
		}
	}
}

// WithAuthBackoff sets the delay after a 401, 403 or other 4xx answer.
// Non-positive values keep DefaultAuthBackoff.
func WithAuthBackoff(d time.Duration) ClientOption {
	return func(cfg *clientConfig) {
		if d > 0 {
			cfg.authBackoff = d
		}
	}
}

// WithIdleTimeout makes the client drop a connection on which nothing, not
// even a heartbeat comment, arrived for d, and reconnect: a peer that
// vanished without closing the connection is otherwise only noticed by TCP
// after many minutes. Set it to a few heartbeat intervals. Only time spent
// waiting for the server counts, not time spent in the handler. d <= 0 (the
// default) disables it.
func WithIdleTimeout(d time.Duration) ClientOption {
	return func(cfg *clientConfig) { cfg.idleTimeout = d }
}

// WithLogger sets where the client logs connections and failures.
func WithLogger(l *slog.Logger) ClientOption {
	return func(cfg *clientConfig) {
		if l != nil {
			cfg.logger = l
		}
	}
}

// WithConnectHook sets a function called when a connection is established:
// a 200 answer with a text/event-stream body.
func WithConnectHook(f func(url string)) ClientOption {
	return func(cfg *clientConfig) { cfg.onConnect = f }
}

// WithDisconnectHook sets a function called once at the end of every
// connection attempt, whether it failed before connecting or ended after
// (including when Run stops): err says why, and is a *StatusError for an
// HTTP status other than 200. Each connect hook call is followed by exactly
// one disconnect hook call.
func WithDisconnectHook(f func(url string, err error)) ClientOption {
	return func(cfg *clientConfig) { cfg.onDisconnect = f }
}

// WithActivityHook sets a function called whenever bytes arrive on a live
// stream, comments and heartbeats included, so the caller can tell a quiet
// stream from a stale one.
func WithActivityHook(f func(time.Time)) ClientOption {
	return func(cfg *clientConfig) { cfg.onActivity = f }
}

// withStartIndex pins the first URL; tests use it to make rotation
// observable.
func withStartIndex(i int) ClientOption {
	return func(cfg *clientConfig) { cfg.startIndex = i }
}

// Client follows an event stream served at one or more equivalent URLs,
// reconnecting as EventSource does.
//
// LastEventID is safe for concurrent use; Run is called once at a time.
type Client struct {
	urls     []string
	redacted []string
	cfg      clientConfig
	running  atomic.Bool

	mu     sync.Mutex
	lastID string
}

// NewClient returns a Client for urls, which must be absolute http or https
// URLs serving the same stream (for example the nodes of a cluster).
func NewClient(urls []string, opts ...ClientOption) (*Client, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("sse: no stream URL: %w", ErrInvalidURL)
	}
	c := &Client{
		urls:     make([]string, len(urls)),
		redacted: make([]string, len(urls)),
		cfg: clientConfig{
			initial:     DefaultInitialBackoff,
			max:         DefaultMaxBackoff,
			authBackoff: DefaultAuthBackoff,
			logger:      slog.New(slog.DiscardHandler),
			startIndex:  -1,
			sleep:       sleep,
		},
	}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			// The url.Error would repeat the URL, password included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("sse: stream URL #%d: %w: %v", i, ErrInvalidURL, err) //nolint:errorlint // the sentinel is the contract; the cause is detail
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("sse: stream URL #%d %q: %w: want an absolute http or https URL", i, u.Redacted(), ErrInvalidURL)
		}
		c.urls[i] = raw
		c.redacted[i] = u.Redacted()
	}
	for _, o := range opts {
		o(&c.cfg)
	}
	if c.cfg.max < c.cfg.initial {
		c.cfg.max = c.cfg.initial
	}
	if c.cfg.httpClient == nil {
		c.cfg.httpClient = defaultHTTPClient()
	}
	c.lastID = c.cfg.lastEventID
	return c, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: DefaultConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   DefaultConnectTimeout,
		ResponseHeaderTimeout: DefaultResponseHeaderTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          16,
	}}
}

// LastEventID returns the ID the next connection resumes from: the ID of the
// last event the handler accepted, or one the server set without an event.
func (c *Client) LastEventID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID
}

func (c *Client) setLastID(id string) {
	c.mu.Lock()
	c.lastID = id
	c.mu.Unlock()
}

// runState is what Run carries from one connection to the next.
type runState struct {
	retry    time.Duration // the server's retry field, when hasRetry
	hasRetry bool
	failures int        // rounds that failed otherwise than refused, for the backoff exponent
	inRow    int        // failed attempts in the current round, one per URL
	round    roundState // how the current round's attempts failed
}

// roundState sums up the failures of one round: consecutive failed
// attempts, one at each URL.
type roundState struct {
	slow       bool // some URL answered 4xx
	other      bool // some URL failed otherwise than refused
	retryAfter time.Duration
}

// outcome is how one connection attempt ended.
type outcome struct {
	err        error // why; goes to the disconnect hook
	fatal      bool  // Run returns err
	healthy    bool  // delivered an event or stayed up: reset the backoff, keep the URL
	slow       bool  // 4xx: wait the auth backoff
	refused    bool  // nobody answered, or a gateway said nobody does: a restart
	retryAfter time.Duration
}

// Run connects, calls handle for every event, and reconnects whenever the
// stream ends or a connection fails, until one of these, which it returns:
//   - ctx is done: ctx.Err(), promptly, also while reading or waiting;
//   - handle returns an error: that error, wrapped (the event's ID is not
//     recorded as the last event ID);
//   - a server answers 204: a *StatusError wrapping ErrNoContent.
//
// Run starts at a random URL so that many clients spread over a cluster.
// A connection that delivered an event (or stayed up a minute) was healthy:
// the client reconnects to the same URL after the server's retry field (or
// the initial backoff), with jitter, and the backoff starts over. After a
// failed attempt it moves to the next URL at once: it waits only when
// every URL has failed in a row (a round), and then
//   - when every URL refused (connection refused, reset or closed before
//     an answer; 502, 503 or 504, what a gateway says while the server
//     restarts), no longer than the retry field: a restart costs about one
//     retry interval however long it took;
//   - when some URL answered 401, 403 or another 4xx (logged as errors),
//     the auth backoff;
//   - otherwise a backoff that grows exponentially with jitter from the
//     retry field up to the maximum.
//
// A Retry-After on 429 or 5xx lengthens the wait, and WithMaxDelay caps
// it, whatever asked for it.
func (c *Client) Run(ctx context.Context, handle func(Event) error) error {
	if handle == nil {
		return errors.New("sse: Run needs a handler")
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer c.running.Store(false)

	idx := c.cfg.startIndex
	if idx < 0 || idx >= len(c.urls) {
		idx = rand.IntN(len(c.urls))
	}
	var st runState
	// Each iteration makes one attempt and then waits at least minDelay or
	// returns, so the loop cannot spin; it ends with ctx or a fatal outcome.
	for {
		out := c.attempt(ctx, idx, handle, &st)
		if out.fatal {
			return out.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !out.healthy {
			idx = (idx + 1) % len(c.urls)
		}
		delay := c.delay(&st, out)
		c.cfg.logger.Debug("sse: reconnecting", "url", c.redacted[idx], "delay", delay)
		if !c.cfg.sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}

// delay chooses the wait before the next attempt, after out, and carries
// what it must remember in st (see Run).
func (c *Client) delay(st *runState, out outcome) time.Duration {
	if out.healthy {
		st.failures, st.inRow, st.round = 0, 0, roundState{}
		return c.clamp(jitter(c.base(st)))
	}
	st.inRow++
	st.round.slow = st.round.slow || out.slow
	st.round.other = st.round.other || (!out.refused && !out.slow)
	st.round.retryAfter = max(st.round.retryAfter, out.retryAfter)
	if st.inRow < len(c.urls) {
		return minDelay // another URL may answer: try it now
	}
	r := st.round
	st.inRow, st.round = 0, roundState{}
	var d time.Duration
	switch {
	case r.slow:
		d = jitter(c.cfg.authBackoff)
	case !r.other:
		d = jitter(c.base(st))
	default:
		d = c.backoff(st)
		st.failures = min(st.failures+1, 62)
	}
	return c.clamp(max(d, min(r.retryAfter, maxRetryAfter)))
}

// clamp bounds a delay by minDelay below and WithMaxDelay above.
func (c *Client) clamp(d time.Duration) time.Duration {
	d = max(d, minDelay)
	if c.cfg.maxDelay > 0 {
		d = min(d, c.cfg.maxDelay)
	}
	return d
}

// base is the server's retry field, or the initial backoff before one.
func (c *Client) base(st *runState) time.Duration {
	if st.hasRetry {
		return st.retry
	}
	return c.cfg.initial
}

// backoff is base·2^failures, capped, with jitter. The cap is at least the
// server's retry value: a server asking for a long delay gets it.
func (c *Client) backoff(st *runState) time.Duration {
	base := c.base(st)
	ceiling := max(c.cfg.max, base)
	d := base
	for i := 0; i < st.failures && d < ceiling; i++ {
		if d > ceiling/2 { // doubling would pass the cap, or overflow
			d = ceiling
			break
		}
		d *= 2
	}
	return jitter(min(d, ceiling))
}

// jitter returns a delay in [d/2, d]: clients that lost the same server do
// not all come back at the same instant, and none comes back much sooner
// than asked.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// attempt makes one connection to c.urls[idx] and reads it to its end.
func (c *Client) attempt(ctx context.Context, idx int, handle func(Event) error, st *runState) (out outcome) {
	rawURL, shown := c.urls[idx], c.redacted[idx]
	log := c.cfg.logger.With("url", shown)
	defer func() {
		if ctx.Err() != nil && !out.fatal {
			out.err = ctx.Err()
		}
		if c.cfg.onDisconnect != nil {
			c.cfg.onDisconnect(rawURL, out.err)
		}
	}()

	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(connCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		return outcome{err: fmt.Errorf("sse: build request for %s: %w", shown, err), fatal: true}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if id := c.LastEventID(); id != "" {
		if validHeaderValue(id) {
			req.Header.Set("Last-Event-ID", id)
		} else {
			// net/http would refuse the request, and then every retry:
			// resuming from the start beats never connecting again.
			log.Warn("sse: last event ID cannot be sent in a header; resuming without it", "last_event_id", id)
		}
	}
	if c.cfg.requestHook != nil {
		c.cfg.requestHook(req)
	}
	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("sse: connection failed", "err", err)
		}
		return outcome{err: fmt.Errorf("sse: connect to %s: %w", shown, err), refused: isRefused(err)}
	}
	defer resp.Body.Close()

	if res, ok := c.checkResponse(resp, shown, log); !ok {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		return res
	}

	connected := time.Now()
	if c.cfg.onConnect != nil {
		c.cfg.onConnect(rawURL)
	}
	log.Info("sse: connected")

	body := io.Reader(resp.Body)
	if c.cfg.onActivity != nil || c.cfg.idleTimeout > 0 {
		ar := &activityReader{r: resp.Body, onRead: c.cfg.onActivity, idle: c.cfg.idleTimeout}
		if ar.idle > 0 {
			// Cancelling the request's context is what unblocks a Read. The
			// timer runs only inside Read (see activityReader).
			ar.timer = time.AfterFunc(ar.idle, func() { cancel(ErrIdleTimeout) })
			ar.timer.Stop()
		}
		body = ar
	}
	dec := NewDecoder(body, WithInitialLastEventID(c.LastEventID()))
	delivered := false
	for {
		ev, err := dec.Next()
		if err != nil {
			c.setLastID(dec.LastEventID())
			if r, ok := dec.Retry(); ok {
				st.retry, st.hasRetry = r, true
			}
			out.healthy = delivered || time.Since(connected) >= stableAfter
			switch {
			case ctx.Err() != nil:
				out.err = ctx.Err()
			case errors.Is(context.Cause(connCtx), ErrIdleTimeout):
				out.err = fmt.Errorf("sse: %s: nothing received for %v: %w", shown, c.cfg.idleTimeout, ErrIdleTimeout)
				log.Warn("sse: stream idle, reconnecting", "idle", c.cfg.idleTimeout)
			case errors.Is(err, io.EOF):
				out.err = fmt.Errorf("sse: stream from %s ended: %w", shown, io.EOF)
				log.Info("sse: stream ended")
			default:
				out.err = fmt.Errorf("sse: stream from %s: %w", shown, err)
				log.Warn("sse: stream broken", "err", err)
			}
			return out
		}
		if err := handle(ev); err != nil {
			return outcome{err: fmt.Errorf("sse: handle event %q: %w", ev.ID, err), fatal: true}
		}
		delivered = true
		c.setLastID(ev.ID)
	}
}

// checkResponse accepts a 200 text/event-stream answer, or says what to do
// about any other.
func (c *Client) checkResponse(resp *http.Response, shown string, log *slog.Logger) (outcome, bool) {
	code := resp.StatusCode
	if code == http.StatusOK {
		ct := resp.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "text/event-stream" {
			return outcome{}, true
		}
		log.Warn("sse: not an event stream", "content_type", ct)
		return outcome{err: fmt.Errorf("sse: %s answered with content type %q: %w", shown, ct, ErrUnexpectedContentType)}, false
	}
	se := &StatusError{URL: shown, StatusCode: code}
	switch {
	case code == http.StatusNoContent:
		log.Info("sse: server asked to stop (204 No Content)")
		return outcome{err: se, fatal: true}, false
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		log.Error("sse: stream refused the client: check the credentials", "status", code, "retry_in", c.cfg.authBackoff)
		return outcome{err: se, slow: true}, false
	case code == http.StatusTooManyRequests || code >= 500:
		ra := parseRetryAfter(resp.Header.Get("Retry-After"))
		log.Warn("sse: server unavailable", "status", code, "retry_after", ra)
		refused := code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
		return outcome{err: se, retryAfter: ra, refused: refused}, false
	case code >= 400:
		log.Error("sse: stream rejected the request: check the URL and the client's configuration", "status", code, "retry_in", c.cfg.authBackoff)
		return outcome{err: se, slow: true}, false
	default:
		log.Warn("sse: unexpected status", "status", code)
		return outcome{err: se}, false
	}
}

// isRefused reports whether a request failed the way it does while the
// server restarts: nothing listens (connection refused), or the connection
// was reset or closed before an answer.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// validHeaderValue reports whether net/http will send s as a header value:
// no control characters other than tab. A server may set such an ID; the
// Decoder only refuses NUL, as the standard says.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else is 0.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// activityReader reports every successful read and, with an idle timeout,
// runs the idle timer only while a Read waits: time spent in the handler is
// not the server's silence.
type activityReader struct {
	r      io.Reader
	onRead func(time.Time)
	idle   time.Duration
	timer  *time.Timer
}

func (a *activityReader) Read(p []byte) (int, error) {
	if a.timer != nil {
		a.timer.Reset(a.idle)
	}
	n, err := a.r.Read(p)
	if a.timer != nil {
		a.timer.Stop()
	}
	if n > 0 && a.onRead != nil {
		a.onRead(time.Now())
	}
	return n, err
}
