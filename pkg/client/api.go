package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// API paths.
const (
	pathRevocations = "/v1/revocations"
	pathEvents      = "/v1/events"
	pathAgents      = "/v1/agents"
)

// MaxListLimit is the largest page List asks for (the server's limit).
const MaxListLimit = 1000

// Statuses of a stored or lifted revocation in the server's answers.
const (
	StatusCreated   = "created"
	StatusDuplicate = "duplicate" // a retry with the same Idempotency-Key
	StatusExpired   = "expired"   // past expires_at and the grace: not published
	StatusFailed    = "failed"    // a batch item the log did not acknowledge
	StatusLifted    = "lifted"
)

// WriteOptions go with a write (Revoke, RevokeBatch, Lift).
type WriteOptions struct {
	// IdempotencyKey is sent as Idempotency-Key: a second request with the
	// same key is answered with the first one's result, which also makes
	// the write safe to retry on network failures and 5xx.
	IdempotencyKey string
	// Reason is the audit text of a lift (a revocation carries its own).
	Reason string
}

// Stored is a revocation as the server stored it, with the status of the
// write.
type Stored struct {
	events.Revocation
	Status string `json:"status"`
	// Enforcement is set when the server reported it.
	Enforcement *Enforcement `json:"enforcement,omitempty"`
	// Raw is the server's answer as sent.
	Raw json.RawMessage `json:"-"`
}

// Enforcement says how far the connected agents are with a revocation.
type Enforcement struct {
	Agents        int        `json:"agents"`
	Applied       int        `json:"applied"`
	LastAppliedAt *time.Time `json:"last_applied_at,omitempty"`
	Pending       []AgentRef `json:"pending"`
}

// Done reports whether every connected agent applied the revocation.
func (e *Enforcement) Done() bool { return len(e.Pending) == 0 }

// AgentRef names an agent.
type AgentRef struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
	Node     string `json:"node"`
}

// BatchResult is the answer to a batch of revocations.
type BatchResult struct {
	Revocations []Stored `json:"revocations"`
	Created     int64    `json:"created"`
	Duplicates  int64    `json:"duplicates"`
	Expired     int64    `json:"expired"`
	Failed      int64    `json:"failed"`
}

// Lifted is the answer to a lift.
type Lifted struct {
	Key    string `json:"key"`
	ID     string `json:"id"` // the lift event's id
	Status string `json:"status"`
	// Raw is the server's answer as sent.
	Raw json.RawMessage `json:"-"`
}

// Revoke posts one revocation and returns what the server stored: 201
// created, or 200 when nothing new was (StatusDuplicate, StatusExpired).
func (c *Client) Revoke(ctx context.Context, r events.Revocation, opts WriteOptions) (*Stored, error) {
	body, err := json.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("client: encode revocation: %w", err)
	}
	var out Stored
	resp, err := c.call(ctx, c.write(http.MethodPost, pathRevocations, body, opts), &out)
	if err != nil {
		return nil, err
	}
	out.Raw = resp.Body
	return &out, nil
}

// RevokeRaw posts a request body as is (one revocation, or
// {"revocations":[…]}) and returns the server's answer body on success.
func (c *Client) RevokeRaw(ctx context.Context, body []byte, opts WriteOptions) ([]byte, error) {
	resp, err := c.call(ctx, c.write(http.MethodPost, pathRevocations, body, opts), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// RevokeBatch posts revocations in one request (at most the server's
// --max-batch). Every item is in the answer with its status; items the log
// did not acknowledge are StatusFailed, and the request fails with 503.
func (c *Client) RevokeBatch(ctx context.Context, revs []events.Revocation, opts WriteOptions) (*BatchResult, error) {
	body, err := json.Marshal(struct {
		Revocations []events.Revocation `json:"revocations"`
	}{revs})
	if err != nil {
		return nil, fmt.Errorf("client: encode revocations: %w", err)
	}
	var out BatchResult
	if _, err := c.call(ctx, c.write(http.MethodPost, pathRevocations, body, opts), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) write(method, path string, body []byte, opts WriteOptions) Request {
	return Request{Method: method, Path: path, Body: body, IdempotencyKey: opts.IdempotencyKey, Retry: true}
}

// Lift lifts the revocation with this key (32 hex digits). A key no live
// revocation has is ErrNotFound.
func (c *Client) Lift(ctx context.Context, key string, opts WriteOptions) (*Lifted, error) {
	if !events.ValidKey(key) {
		return nil, fmt.Errorf("client: %q is not a revocation key", key)
	}
	req := c.write(http.MethodDelete, pathRevocations+"/"+key, nil, opts)
	if opts.Reason != "" {
		req.Query = url.Values{"reason": {opts.Reason}}
	}
	var out Lifted
	resp, err := c.call(ctx, req, &out)
	if err != nil {
		return nil, err
	}
	out.Raw = resp.Body
	return &out, nil
}

// LiftMatching lifts the revocation posted with these matchers: its key is
// computed locally (events.Revocation.ComputeKey), as the server does.
// Claim values must be normalised as the server stores them (numbers as
// float64).
func (c *Client) LiftMatching(ctx context.Context, matchers events.Revocation, opts WriteOptions) (*Lifted, error) {
	return c.Lift(ctx, matchers.ComputeKey(), opts)
}

// Live is a live revocation as GET /v1/revocations/{key} answers it.
type Live struct {
	events.Revocation
	Enforcement *Enforcement `json:"enforcement,omitempty"`
}

// Get returns the live revocation with this key, and how far the agents
// are with it; ErrNotFound when there is none.
func (c *Client) Get(ctx context.Context, key string) (*Live, error) {
	if !events.ValidKey(key) {
		return nil, fmt.Errorf("client: %q is not a revocation key", key)
	}
	var out Live
	if _, err := c.call(ctx, Request{Method: http.MethodGet, Path: pathRevocations + "/" + key, Retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListOptions filter and page List.
type ListOptions struct {
	Sub, JTI, Iss, Kid string
	// Limit is the page size, 1 to MaxListLimit; 0 leaves it to the server
	// (100).
	Limit int
	// After is the Next of the previous page.
	After string
}

// Page is one page of live revocations, oldest first.
type Page struct {
	Revocations []events.Revocation
	// Raw holds each revocation as the server sent it.
	Raw []json.RawMessage
	// Next is the cursor of the next page, "" after the last.
	Next string
}

// List returns one page of the live revocations.
func (c *Client) List(ctx context.Context, opts ListOptions) (*Page, error) {
	if opts.Limit < 0 || opts.Limit > MaxListLimit {
		return nil, fmt.Errorf("client: list limit %d: want 1 to %d", opts.Limit, MaxListLimit)
	}
	q := url.Values{}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	for name, v := range map[string]string{"sub": opts.Sub, "jti": opts.JTI, "iss": opts.Iss, "kid": opts.Kid, "after": opts.After} {
		if v != "" {
			q.Set(name, v)
		}
	}
	var answer struct {
		Revocations []json.RawMessage `json:"revocations"`
		Next        string            `json:"next"`
	}
	req := Request{Method: http.MethodGet, Path: pathRevocations, Query: q, Retry: true}
	if _, err := c.call(ctx, req, &answer); err != nil {
		return nil, err
	}
	p := &Page{Raw: answer.Revocations, Next: answer.Next, Revocations: make([]events.Revocation, len(answer.Revocations))}
	for i, raw := range answer.Revocations {
		if err := json.Unmarshal(raw, &p.Revocations[i]); err != nil {
			return nil, fmt.Errorf("client: GET %s: unexpected revocation: %w", pathRevocations, err)
		}
	}
	return p, nil
}

// ErrCursorLoop is returned by All when the server sends the same page
// cursor twice.
var ErrCursorLoop = errors.New("client: the server returned the same page cursor twice")

// All follows the pages of List from opts.After to the end. Iteration
// stops at the first error, which is yielded with a zero revocation.
func (c *Client) All(ctx context.Context, opts ListOptions) iter.Seq2[events.Revocation, error] {
	return func(yield func(events.Revocation, error) bool) {
		// Each page advances the cursor (checked), and the live state is
		// finite, so this ends; ctx ends it sooner.
		for {
			p, err := c.List(ctx, opts)
			if err != nil {
				yield(events.Revocation{}, err)
				return
			}
			for _, r := range p.Revocations {
				if !yield(r, nil) {
					return
				}
			}
			switch p.Next {
			case "":
				return
			case opts.After:
				yield(events.Revocation{}, ErrCursorLoop)
				return
			}
			opts.After = p.Next
		}
	}
}

// ErrNoEnforcement is returned by WaitEnforced when the server's answer has
// no enforcement (a broadcaster older than the receipts).
var ErrNoEnforcement = errors.New("client: the server does not report enforcement")

// DefaultWaitPoll is how often WaitEnforced asks by default.
const DefaultWaitPoll = 200 * time.Millisecond

// WaitOptions tune WaitEnforced.
type WaitOptions struct {
	// Deadline is when to stop waiting; the last enforcement is then
	// returned, not done, without an error. Zero waits as long as ctx.
	Deadline time.Time
	// Poll is the interval between reads, DefaultWaitPoll when zero.
	Poll time.Duration
	// OnProgress, when set, is called with each enforcement read that is
	// not done yet.
	OnProgress func(Enforcement)
}

// WaitEnforced reads the enforcement of the revocation with this key (Get)
// until every agent connected to the cluster applied it, or the deadline
// passes: check Done on what it returns. The error is ctx's when it ends
// first.
func (c *Client) WaitEnforced(ctx context.Context, key string, opts WaitOptions) (*Enforcement, error) {
	poll := opts.Poll
	if poll <= 0 {
		poll = DefaultWaitPoll
	}
	for {
		live, err := c.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if live.Enforcement == nil {
			return nil, ErrNoEnforcement
		}
		e := live.Enforcement
		if e.Done() || (!opts.Deadline.IsZero() && !time.Now().Before(opts.Deadline)) {
			return e, nil
		}
		if opts.OnProgress != nil {
			opts.OnProgress(*e)
		}
		d := poll
		if !opts.Deadline.IsZero() {
			d = min(d, time.Until(opts.Deadline))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// AgentStatus is an agent as GET /v1/agents lists it: one that named itself
// on its stream (Revocast-Agent) and is connected to a node of the cluster,
// or left within the last minutes (Connected false).
type AgentStatus struct {
	AgentRef
	ConnectedAt    time.Time  `json:"connected_at"`
	Connected      bool       `json:"connected"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	// Delivered and Applied are event ids (<epoch>-<seq>), "" before the
	// first.
	Delivered  string     `json:"delivered,omitempty"`
	Applied    string     `json:"applied,omitempty"`
	ReportedAt *time.Time `json:"reported_at,omitempty"`
	SeenAt     time.Time  `json:"seen_at"`
	// Lag is how many stream sequences Applied is behind the head, nil
	// when unknown (nothing applied in this epoch).
	Lag *uint64 `json:"lag"`
	// Fresh: connected and reported within the broadcaster's staleness.
	Fresh bool `json:"fresh"`
}

// Agents lists the agents connected to any node of the cluster (role
// reader).
func (c *Client) Agents(ctx context.Context) ([]AgentStatus, error) {
	var answer struct {
		Agents []AgentStatus `json:"agents"`
	}
	if _, err := c.call(ctx, Request{Method: http.MethodGet, Path: pathAgents, Retry: true}, &answer); err != nil {
		return nil, err
	}
	return answer.Agents, nil
}
