package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

const tailAbout = `Follows the event stream and prints one line per event until Ctrl-C:

  2026-05-01T10:00:00Z revoke key=… id=… jti=… sub=… expires=… reason=… actor=…
  2026-05-01T10:00:05Z lift key=… id=…
  2026-05-01T10:00:00Z synced head=<epoch>-<seq>   (caught up; after each connection)
  2026-05-01T10:00:00Z reset                       (the resume point was unknown: the whole state follows)

The time is when the line was received. By default only new events are shown;
--all starts with the whole live state, --from ID after an event id printed
earlier. On a broken connection it reconnects and resumes where it left off.
With --json each line is {"event":…,"id":…,"data":…} with the event's data.`

// tailIdleTimeout drops a connection on which not even a heartbeat arrived
// (the broadcaster sends one every 15s by default) and reconnects.
const tailIdleTimeout = 90 * time.Second

func cmdTail(ctx context.Context, args []string, env cliEnv) error {
	var c apiConn
	var all, asJSON bool
	var from string
	fs := newCmdFlags("tail", "[flags]", tailAbout, env)
	fs.FlagSet.BoolVar(&all, "all", false, "start with the whole live state, then follow")
	fs.FlagSet.StringVar(&from, "from", "", "resume after this event id (<epoch>-<seq>, as printed in id=)")
	fs.FlagSet.BoolVar(&asJSON, "json", false, "print each event as a JSON object: event, id, data")
	c.addFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("tail: unexpected argument %q", pos[0])
	}
	if all && from != "" {
		return usageErr("tail: --all and --from exclude each other")
	}
	if from != "" {
		if _, err := events.ParseEventID(from); err != nil {
			return usageErr("--from %q: want an event id <epoch>-<seq>, as printed in id=", from)
		}
	}
	if err := c.setup(fs, env); err != nil {
		return err
	}
	live := !all && from == ""

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Everything below runs on the Client's Run goroutine (hooks and the
	// handler alike), so these need no lock.
	var (
		head      string // the last synced head: where to resume when no event came yet
		fatal     error
		connected bool
	)
	streamURL := c.endpoint("/v1/events", nil)
	opts := []sse.ClientOption{
		// no overall timeout: the stream is meant to stay open
		sse.WithHTTPClient(&http.Client{Transport: c.transport, CheckRedirect: c.client.CheckRedirect}),
		sse.WithIdleTimeout(tailIdleTimeout),
		sse.WithRequestHook(func(req *http.Request) {
			c.authorize(req)
			if req.Header.Get("Last-Event-ID") != "" {
				return // the Client resumes after the last event it saw
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
			if connected {
				fmt.Fprintf(env.stderr, "tail: reconnected to %s\n", c.base.Redacted())
			}
			connected = true
		}),
		sse.WithDisconnectHook(func(_ string, err error) {
			if runCtx.Err() != nil || err == nil {
				return
			}
			var se *sse.StatusError
			if errors.As(err, &se) {
				a := &apiAnswer{status: se.StatusCode, header: http.Header{}}
				switch se.StatusCode {
				case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest, http.StatusNotFound:
					fatal = c.statusError(a, "tail")
					if se.StatusCode == http.StatusNotFound {
						fatal = &exitError{exitFailure, fmt.Errorf("tail: no event stream at %s: check --server", redactURL(streamURL))}
					}
					cancel()
					return
				}
			}
			fmt.Fprintf(env.stderr, "tail: %s; reconnecting\n", printable(strings.TrimPrefix(err.Error(), "sse: ")))
		}),
	}
	if from != "" {
		opts = append(opts, sse.WithLastEventID(from))
	}
	client, err := sse.NewClient([]string{streamURL}, opts...)
	if err != nil {
		return usageErr("tail: %v", err)
	}
	what := "new events"
	switch {
	case all:
		what = "the whole live state, then new events"
	case from != "":
		what = "events after " + from
	}
	fmt.Fprintf(env.stderr, "tail: following %s: %s (Ctrl-C to stop)\n", c.base.Redacted(), what)

	err = client.Run(runCtx, func(ev sse.Event) error {
		if ev.Type == events.TypeSynced {
			var s events.Synced
			if json.Unmarshal(ev.Data, &s) == nil && s.Head != "" {
				head = s.Head
			}
		}
		if asJSON {
			return printEventJSON(env.stdout, ev)
		}
		return printEventLine(env.stdout, ev, time.Now())
	})
	switch {
	case fatal != nil:
		return fatal
	case ctx.Err() != nil:
		return nil // Ctrl-C: the normal end
	}
	return &exitError{exitFailure, fmt.Errorf("tail: %w", err)}
}

func printEventJSON(w io.Writer, ev sse.Event) error {
	type line struct {
		Event string          `json:"event"`
		ID    string          `json:"id,omitempty"`
		Data  json.RawMessage `json:"data"`
	}
	l := line{Event: ev.Type, ID: ev.ID, Data: ev.Data}
	if l.Event == "" {
		l.Event = "message" // what EventSource calls an event without a type
	}
	if !json.Valid(ev.Data) {
		l.Data, _ = json.Marshal(string(ev.Data))
	}
	return writeJSONLine(w, l)
}

func printEventLine(w io.Writer, ev sse.Event, now time.Time) error {
	var b strings.Builder
	b.WriteString(now.Format(time.RFC3339))
	b.WriteByte(' ')
	switch ev.Type {
	case events.TypeRevoke:
		var r events.Revocation
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return fmt.Errorf("revoke event %s: %w", printable(ev.ID), err)
		}
		fmt.Fprintf(&b, "revoke key=%s id=%s %s", quoteValue(r.Key), quoteValue(ev.ID), describeMatchers(&r))
		if !r.ExpiresAt.IsZero() {
			b.WriteString(" expires=" + r.ExpiresAt.UTC().Format(time.RFC3339))
		}
		if r.Reason != "" {
			b.WriteString(" reason=" + quoteValue(r.Reason))
		}
		if r.Actor != "" {
			b.WriteString(" actor=" + quoteValue(r.Actor))
		}
	case events.TypeLift:
		var l events.Lift
		if err := json.Unmarshal(ev.Data, &l); err != nil {
			return fmt.Errorf("lift event %s: %w", printable(ev.ID), err)
		}
		fmt.Fprintf(&b, "lift key=%s id=%s", quoteValue(l.Key), quoteValue(ev.ID))
	case events.TypeSynced:
		var s events.Synced
		_ = json.Unmarshal(ev.Data, &s)
		fmt.Fprintf(&b, "synced head=%s", quoteValue(s.Head))
	case events.TypeReset:
		b.WriteString("reset")
	default:
		fmt.Fprintf(&b, "%s id=%s data=%s", quoteValue(ev.Type), quoteValue(ev.ID), quoteValue(string(ev.Data)))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
