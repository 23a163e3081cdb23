package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/pkg/cache"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/jwtverify"
	"github.com/revocast/revocast/pkg/sse"
)

// EventsPath is appended to a broadcaster URL that does not already end with
// it.
const EventsPath = "/v1/events"

// maxLists bounds how many denylists Check consults while rebuilding after
// resets (see handleReset).
const maxLists = 4

var (
	// ErrNoToken: the request carries no bearer token.
	ErrNoToken = errors.New("agent: no bearer token")
	// ErrInvalid is matched (errors.Is) by every verification failure; the
	// concrete error is an *InvalidError that wraps golang-jwt's reason
	// (jwt.ErrTokenExpired, jwt.ErrTokenSignatureInvalid, …).
	ErrInvalid = errors.New("agent: invalid token")
	// ErrRevoked: the token verifies, but a live revocation matches it.
	ErrRevoked = errors.New("agent: token revoked")
	// ErrStale: under StaleClosed, the agent has not received the full
	// revocation state yet, or nothing arrived from the broadcaster for
	// longer than the maximum staleness.
	ErrStale = errors.New("agent: revocation state is stale")
	// ErrAlreadyRunning is returned by Run while another Run has not
	// returned.
	ErrAlreadyRunning = errors.New("agent: Run already running")
	// ErrLeewayExceedsGrace is returned by Run when the broadcaster's
	// expiry grace does not cover the agent's leeway: the agent would admit
	// tokens whose revocations an agent started later never receives.
	ErrLeewayExceedsGrace = errors.New("agent: leeway not below the broadcaster's expiry grace")
)

// InvalidError is the error of a token that failed verification.
type InvalidError struct {
	Reason error
}

func (e *InvalidError) Error() string { return "agent: invalid token: " + e.Reason.Error() }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the reason, so errors.Is(err, jwt.ErrTokenExpired) works.
func (e *InvalidError) Unwrap() error { return e.Reason }

func errorf(format string, args ...any) error { return fmt.Errorf("agent: "+format, args...) }

// denyView is what Check consults. Normally one Denylist; after a reset,
// the lists from before it plus the one being rebuilt, until the next
// synced. Immutable once published.
type denyView struct {
	check []*cache.Denylist
	apply *cache.Denylist // the newest, check[len(check)-1]: events go here
}

// Agent follows a broadcaster's revocation stream into a local denylist and
// checks tokens against it. Create it with New, start Run in a goroutine,
// and call Check (or use Middleware) from any goroutine.
type Agent struct {
	cfg      config
	log      *slog.Logger
	client   *sse.Client
	verifier *jwtverify.Verifier
	verified *cache.Verified[*Claims] // nil when disabled
	cacheTTL time.Duration            // leeway: a cached token lives until exp + leeway
	now      func() time.Time

	view         atomic.Pointer[denyView]
	lastActivity atomic.Int64 // UnixNano by cfg.now of the last byte from the stream
	maxLifetime  atomic.Int64 // L in seconds: see WithMaxTokenLifetime
	synced       atomic.Bool  // a synced event has arrived
	ready        atomic.Bool
	readyCh      chan struct{}
	readyOnce    sync.Once
	staleLogged  atomic.Bool // this staleness episode was logged
	running      atomic.Bool
	denyOpts     []cache.Option

	connects    atomic.Uint64
	resets      atomic.Uint64
	revokes     atomic.Uint64
	lifts       atomic.Uint64
	badEvents   atomic.Uint64
	spilledBase atomic.Uint64 // SpilledTotal of retired denylists
	results     [numResults]atomic.Uint64
	metrics     *metrics
	reports     *reporter // nil without a name
}

// New returns an agent that follows the broadcasters at urls (base URLs
// such as http://broadcaster:8080; EventsPath is appended unless present).
// Several URLs must serve the same stream (a cluster); the agent rotates
// over them. It returns an error for a configuration that could verify
// nothing or could be abused: no algorithms, "none", HS* without a secret,
// an algorithm without a key of its kind, no key source, a short HMAC
// secret, or any option given a value it does not accept; such errors
// match ErrInvalidOption. Verification is jwtverify's (see jwtverify.New).
// New does no I/O.
func New(urls []string, opts ...Option) (*Agent, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, errorf("no broadcaster URL")
	}
	streams := make([]string, len(urls))
	for i, raw := range urls {
		s, err := streamURL(raw)
		if err != nil {
			return nil, err
		}
		streams[i] = s
	}
	var a *Agent
	v, err := newVerifier(&cfg, jwtverify.WithKeySetHook(func() {
		// Tokens verified with keys that may be gone must be verified
		// again. The first load may also make the agent ready.
		a.purgeVerified()
		a.maybeReady()
	}))
	if err != nil {
		return nil, err
	}
	a = &Agent{
		cfg:      cfg,
		log:      cfg.logger,
		verifier: v,
		cacheTTL: cfg.leeway,
		now:      cfg.now,
		readyCh:  make(chan struct{}),
		denyOpts: []cache.Option{
			cache.WithCapacity(cfg.denyCapacity),
			cache.WithLeeway(retention(cfg.leeway)),
			cache.WithClock(cfg.now),
		},
	}
	a.maxLifetime.Store(a.effectiveLifetime(0))
	for _, u := range append(slices.Clone(urls), cfg.jwksURL) {
		if plainHTTPOutsideLoopback(u) {
			a.log.Error("plain HTTP outside loopback: whoever is on the path can inject keys or hide revocations; use https", "url", redact(u))
		}
	}
	if cfg.cacheCapacity > 0 {
		a.verified = cache.NewVerified[*Claims](cfg.cacheCapacity)
	}
	d := cache.New(a.denyOpts...)
	a.view.Store(&denyView{check: []*cache.Denylist{d}, apply: d})

	hook := cfg.requestHook
	if cfg.bearer != "" {
		bearer, user := "Bearer "+cfg.bearer, hook
		hook = func(r *http.Request) {
			r.Header.Set("Authorization", bearer)
			if user != nil {
				user(r)
			}
		}
	}
	if cfg.name != "" {
		a.reports = newReporter(newInstance(), cfg.reportInterval, cfg.httpClient, hook)
		named, value := hook, a.reports.header(cfg.name)
		hook = func(r *http.Request) {
			if named != nil {
				named(r)
			}
			r.Header.Set(AgentHeader, value)
		}
	}
	copts := []sse.ClientOption{
		sse.WithLogger(a.log),
		sse.WithActivityHook(a.onActivity),
		sse.WithConnectHook(a.onConnect),
		sse.WithDisconnectHook(a.onDisconnect),
		sse.WithIdleTimeout(cfg.maxStaleness),
		sse.WithBackoff(cfg.reconnectBackoff()),
		sse.WithMaxDelay(max(cfg.maxStaleness/4, time.Millisecond)),
	}
	if cfg.httpClient != nil {
		copts = append(copts, sse.WithHTTPClient(cfg.httpClient))
	}
	if hook != nil {
		copts = append(copts, sse.WithRequestHook(hook))
	}
	if a.client, err = sse.NewClient(streams, copts...); err != nil {
		return nil, errorf("%v", err)
	}
	a.metrics = newMetrics(a)
	return a, nil
}

// newConfig applies opts over the defaults and returns their errors.
func newConfig(opts []Option) (config, error) {
	cfg := config{
		logger:        slog.New(slog.DiscardHandler),
		leeway:        DefaultLeeway,
		maxStaleness:  DefaultMaxStaleness,
		denyCapacity:  cache.DefaultCapacity,
		cacheCapacity: cache.DefaultVerifiedCapacity,
		now:           time.Now,
		sweepInterval: DefaultSweepInterval,
		maxBackoff:    DefaultMaxBackoff,

		reportInterval: DefaultReportInterval,
	}
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, errorf("%w", err)
	}
	// The verifier's own options must be valid too, whatever else New
	// finds (a verifier is built only once the agent's options are).
	if err := jwtverify.Validate(cfg.verify...); err != nil {
		return cfg, errorf("%w", err)
	}
	return cfg, nil
}

// retention is how long past its expires_at the denylist keeps a
// revocation: the leeway plus a minute of clock skew between agent and
// broadcaster, but no longer than the default expiry grace when the leeway
// allows, so that an agent started later (which receives revocations until
// expires_at + G) decides like this one.
func retention(leeway time.Duration) time.Duration {
	if leeway >= events.DefaultExpiryGrace {
		return leeway + time.Minute
	}
	return min(leeway+time.Minute, events.DefaultExpiryGrace)
}

// effectiveLifetime is L in seconds: what the broadcaster announced
// (seconds; 0 for nothing), lowered by configuration.
func (a *Agent) effectiveLifetime(announced int64) int64 {
	l := int64(events.DefaultMaxTokenLifetime / time.Second)
	if announced > 0 {
		l = announced
	}
	if c := int64(a.cfg.maxLifetime / time.Second); c > 0 && c < l {
		l = c
	}
	return l
}

// plainHTTPOutsideLoopback reports an http:// URL whose host is not a
// loopback address or localhost.
func plainHTTPOutsideLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func streamURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errorf("broadcaster URL %q: want an absolute http or https URL", redact(raw))
	}
	if !strings.HasSuffix(u.Path, EventsPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + EventsPath
		u.RawPath = ""
	}
	return u.String(), nil
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

func (a *Agent) purgeVerified() {
	if a.verified != nil {
		a.verified.Purge()
	}
}

// Run follows the stream, reconnecting and resuming as needed, sweeps
// expired revocations and refreshes the JWKS, until ctx ends; it then
// returns nil. It returns an error only if the broadcaster told it to stop
// for good (204 No Content). One Run at a time.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer a.running.Store(false)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if a.verifier.HasJWKS() {
		wg.Go(func() { a.verifier.Run(runCtx) })
	}
	wg.Go(func() { a.sweepLoop(runCtx) })
	if a.reports != nil {
		wg.Go(func() { a.reports.run(runCtx) })
	}
	err := a.client.Run(runCtx, a.handle)
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (a *Agent) sweepLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.Sweep()
		}
	}
}

// Sweep drops expired revocations from memory now (Run does it
// periodically) and returns how many it dropped.
func (a *Agent) Sweep() int {
	now := a.now()
	n := 0
	for _, d := range a.view.Load().check {
		n += d.Sweep(now)
	}
	return n
}

// handle applies one event. It runs on Run's goroutine only, so view swaps
// need no lock against each other; Check reads the view atomically.
func (a *Agent) handle(ev sse.Event) error {
	err := a.apply(ev)
	if a.reports != nil && err == nil && ev.ID != "" {
		a.reports.setApplied(ev.ID)
		a.reports.poke()
	}
	return err
}

func (a *Agent) apply(ev sse.Event) error {
	switch ev.Type {
	case events.TypeRevoke:
		var r events.Revocation
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			a.badEvent(ev, err)
			return nil
		}
		a.view.Load().apply.Apply(&r)
		a.revokes.Add(1)
		a.metrics.revokes.Inc()
	case events.TypeLift:
		var l events.Lift
		if err := json.Unmarshal(ev.Data, &l); err != nil || l.Key == "" {
			a.badEvent(ev, err)
			return nil
		}
		// The key is a function of the matchers, so the lift applies to
		// the lists from before a reset too.
		for _, d := range a.view.Load().check {
			d.Lift(l.Key)
		}
		a.lifts.Add(1)
		a.metrics.lifts.Inc()
	case events.TypeReset:
		a.handleReset()
	case events.TypeSynced:
		return a.handleSynced(ev)
	default:
		a.log.Debug("ignoring event of unknown type", "type", ev.Type, "id", ev.ID)
	}
	return nil
}

func (a *Agent) badEvent(ev sse.Event, err error) {
	a.badEvents.Add(1)
	a.log.Error("cannot decode event; it is skipped", "type", ev.Type, "id", ev.ID, "err", err)
}

// handleReset starts a rebuild: the stream can no longer be resumed and the
// whole state follows. Events go to a fresh list, and Check consults the
// old lists too until the next synced, so that nothing revoked is admitted
// meanwhile. A reset during a rebuild (the connection dropped again before
// synced) adds another fresh list, keeping the partial one; past maxLists
// the newest list keeps receiving events instead (a replay re-applies every
// live revocation, so this can only over-deny until the next reset).
func (a *Agent) handleReset() {
	a.resets.Add(1)
	a.metrics.resets.Inc()
	v := a.view.Load()
	if len(v.check) >= maxLists {
		a.log.Warn("reset from the broadcaster during a rebuild; continuing in the current list")
		return
	}
	fresh := cache.New(a.denyOpts...)
	a.view.Store(&denyView{check: append(slices.Clone(v.check), fresh), apply: fresh})
	a.log.Warn("broadcaster reset the stream: rebuilding the denylist from its full state (the old one keeps denying until then)")
}

func (a *Agent) handleSynced(ev sse.Event) error {
	var s events.Synced
	_ = json.Unmarshal(ev.Data, &s) // a synced without settings keeps the defaults
	if s.ExpiryGrace > 0 {
		grace := time.Duration(s.ExpiryGrace) * time.Second
		if a.cfg.leeway >= grace {
			a.log.Error("the broadcaster's expiry grace does not cover this agent's leeway: lower the leeway or raise the broadcaster's --expiry-grace",
				"leeway", a.cfg.leeway, "expiry_grace", grace)
			return fmt.Errorf("%w: leeway %v, expiry grace %v", ErrLeewayExceedsGrace, a.cfg.leeway, grace)
		}
	}
	if l := a.effectiveLifetime(s.MaxTokenLifetime); a.maxLifetime.Swap(l) != l {
		a.log.Info("maximum token lifetime", "seconds", l)
	}
	v := a.view.Load()
	if len(v.check) > 1 {
		var retired uint64
		for _, d := range v.check[:len(v.check)-1] {
			retired += d.Stats().SpilledTotal
		}
		a.spilledBase.Add(retired)
		a.view.Store(&denyView{check: []*cache.Denylist{v.apply}, apply: v.apply})
		a.log.Info("denylist rebuilt", "revocations", a.denylistSize(v.apply))
	}
	if a.reports != nil && s.Head != "" {
		// everything up to the head is applied
		a.reports.setApplied(s.Head)
		a.reports.poke()
	}
	if !a.synced.Swap(true) {
		a.log.Info("agent synced", "head", s.Head, "revocations", a.denylistSize(v.apply))
		a.maybeReady()
	}
	return nil
}

func (a *Agent) denylistSize(d *cache.Denylist) int {
	s := d.Stats()
	return s.Exact + s.Spilled + s.ClaimRules
}

// maybeReady closes the ready channel once the state is synced and, with a
// JWKS, the key set is loaded.
func (a *Agent) maybeReady() {
	if !a.synced.Load() {
		return
	}
	if !a.verifier.KeySetLoaded() {
		return
	}
	a.readyOnce.Do(func() {
		a.ready.Store(true)
		close(a.readyCh)
	})
}

func (a *Agent) onActivity(time.Time) {
	a.lastActivity.Store(a.now().UnixNano())
	if a.reports != nil {
		a.reports.poke() // a heartbeat (or an event) is worth a report
	}
	if a.staleLogged.Load() && a.staleLogged.CompareAndSwap(true, false) {
		a.log.Info("stream active again: the agent is fresh")
	}
}

func (a *Agent) onConnect(u string) {
	if a.reports != nil {
		a.reports.connected(u)
	}
	if a.connects.Add(1) > 1 {
		a.metrics.reconnects.Inc()
	}
	if a.reports != nil {
		a.log.Info("connected to broadcaster", "url", redact(u), "last_event_id", a.client.LastEventID(),
			"name", a.cfg.name, "instance", a.reports.instance)
		return
	}
	a.log.Info("connected to broadcaster", "url", redact(u), "last_event_id", a.client.LastEventID())
}

func (a *Agent) onDisconnect(u string, err error) {
	a.log.Debug("disconnected from broadcaster", "url", redact(u), "err", err)
}

// Name is the name the agent gives the broadcaster (WithName); Instance
// identifies this agent among those with the same name, a random id chosen
// by New. Both are empty without a name.
func (a *Agent) Name() string { return a.cfg.name }

// Instance: see Name.
func (a *Agent) Instance() string {
	if a.reports == nil {
		return ""
	}
	return a.reports.instance
}

// Ready reports whether the agent has received the full revocation state
// once (its first synced event) and, with a JWKS, loaded the key set once.
// It stays true afterwards; see Fresh for the current state.
func (a *Agent) Ready() bool { return a.ready.Load() }

// ReadyChan is closed when Ready becomes true.
func (a *Agent) ReadyChan() <-chan struct{} { return a.readyCh }

// Fresh reports whether the agent is ready and something arrived from the
// broadcaster within the maximum staleness: what a readiness probe wants.
func (a *Agent) Fresh() bool { return a.Ready() && !a.stale(a.now()) }

// stale reports whether Check must treat the state as stale at now.
func (a *Agent) stale(now time.Time) bool {
	if !a.synced.Load() {
		return true
	}
	return now.UnixNano()-a.lastActivity.Load() > int64(a.cfg.maxStaleness)
}

// Stats describes the agent at the moment of the call.
type Stats struct {
	Ready bool // see Ready
	Stale bool // Check would treat the state as stale now
	// Rebuilding: a reset arrived and the next synced has not.
	Rebuilding   bool
	LastActivity time.Time // zero before the first byte
	Connects     uint64    // successful connections to a broadcaster
	Resets       uint64    // reset events received
	Revokes      uint64    // revoke events applied
	Lifts        uint64    // lift events applied
	BadEvents    uint64    // events that could not be decoded
	// Denylist describes the list events are applied to (during a rebuild,
	// the one being rebuilt). SpilledTotal counts over the agent's life,
	// across resets.
	Denylist     cache.Stats
	SpilledTotal uint64
	// CachedTokens is the size of the verified-token cache.
	CachedTokens int
	// Checks counts Check results by name (see the metric
	// revocast_agent_checks_total).
	Checks map[string]uint64
}

// Stats returns counters and sizes.
func (a *Agent) Stats() Stats {
	now := a.now()
	v := a.view.Load()
	st := Stats{
		Ready:      a.Ready(),
		Stale:      a.stale(now),
		Rebuilding: len(v.check) > 1,
		Connects:   a.connects.Load(),
		Resets:     a.resets.Load(),
		Revokes:    a.revokes.Load(),
		Lifts:      a.lifts.Load(),
		BadEvents:  a.badEvents.Load(),
		Denylist:   v.apply.Stats(),
		Checks:     make(map[string]uint64, numResults),
	}
	if ns := a.lastActivity.Load(); ns != 0 {
		st.LastActivity = time.Unix(0, ns)
	}
	st.SpilledTotal = a.spilledBase.Load()
	for _, d := range v.check {
		st.SpilledTotal += d.Stats().SpilledTotal
	}
	if a.verified != nil {
		st.CachedTokens = a.verified.Len()
	}
	for r := range numResults {
		st.Checks[r.String()] = a.results[r].Load()
	}
	return st
}
