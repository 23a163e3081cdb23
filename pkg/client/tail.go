package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// DefaultTailIdleTimeout is how long Tail waits for anything, heartbeats
// included (the broadcaster sends one every 15s by default), before it drops
// the connection and reconnects.
const DefaultTailIdleTimeout = 90 * time.Second

// Event is one event of the stream: Type is events.TypeRevoke,
// events.TypeLift, events.TypeSynced or events.TypeReset; Data its JSON
// payload; ID the event id to resume after.
type Event = sse.Event

// TailOptions say where Tail starts and what it reports.
type TailOptions struct {
	// From resumes after this event id (<epoch>-<seq>). Without it, and
	// without All, only new events are delivered.
	From string
	// All starts with the whole live state, then follows.
	All bool
	// IdleTimeout, DefaultTailIdleTimeout when zero.
	IdleTimeout time.Duration
	// OnConnect is called on each connection; reconnected is false for the
	// first.
	OnConnect func(reconnected bool)
	// OnDisconnect is called when a connection ends with an error Tail
	// recovers from by reconnecting.
	OnDisconnect func(err error)
}

// Tail follows the event stream and calls handle for each event, in order,
// on one goroutine, until ctx ends (it then returns nil) or handle returns
// an error (returned). On a broken connection it reconnects and resumes
// after the last event it delivered, or at the head of the last synced
// event when none came since, so no event is lost. An answer that will not
// change by retrying (400, 401, 403, 404) ends it with an *Error.
func (c *Client) Tail(ctx context.Context, opts TailOptions, handle func(Event) error) error {
	if opts.All && opts.From != "" {
		return errors.New("client: Tail: All and From exclude each other")
	}
	if opts.From != "" {
		if _, err := events.ParseEventID(opts.From); err != nil {
			return errors.New("client: Tail: From is not an event id <epoch>-<seq>")
		}
	}
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = DefaultTailIdleTimeout
	}
	live := !opts.All && opts.From == ""
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Everything below runs on the sse Client's Run goroutine (hooks and the
	// handler alike), so these need no lock.
	var (
		head      string // the last synced head: where to resume when no event came yet
		fatal     error
		connected bool
	)
	hc := *c.hc
	hc.Timeout = 0 // the stream is meant to stay open
	sopts := []sse.ClientOption{
		sse.WithHTTPClient(&hc),
		sse.WithIdleTimeout(idle),
		sse.WithRequestHook(func(req *http.Request) {
			c.authorize(req)
			req.Header.Set("User-Agent", c.userAgent)
			if req.Header.Get("Last-Event-ID") != "" {
				return // resuming after the last event delivered
			}
			switch {
			case head != "":
				// connected before but no event came since: resume at the
				// head of that connection, not at a new "now", or whatever
				// happened in between would be lost
				req.Header.Set("Last-Event-ID", head)
			case live:
				q := req.URL.Query()
				q.Set("last_event_id", "now")
				req.URL.RawQuery = q.Encode()
			}
		}),
		sse.WithConnectHook(func(string) {
			if opts.OnConnect != nil {
				opts.OnConnect(connected)
			}
			connected = true
		}),
		sse.WithDisconnectHook(func(_ string, err error) {
			if runCtx.Err() != nil || err == nil {
				return
			}
			var se *sse.StatusError
			if errors.As(err, &se) {
				switch se.StatusCode {
				case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest, http.StatusNotFound:
					fatal = &Error{Method: http.MethodGet, Path: pathEvents, Status: se.StatusCode}
					cancel()
					return
				}
			}
			if opts.OnDisconnect != nil {
				opts.OnDisconnect(err)
			}
		}),
	}
	if opts.From != "" {
		sopts = append(sopts, sse.WithLastEventID(opts.From))
	}
	sc, err := sse.NewClient([]string{c.URL(pathEvents, nil)}, sopts...)
	if err != nil {
		return err
	}
	err = sc.Run(runCtx, func(ev sse.Event) error {
		if ev.Type == events.TypeSynced {
			var s events.Synced
			if json.Unmarshal(ev.Data, &s) == nil && s.Head != "" {
				head = s.Head
			}
		}
		return handle(ev)
	})
	switch {
	case fatal != nil:
		return fatal
	case ctx.Err() != nil:
		return nil
	}
	return err
}
