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

	"github.com/revocast/revocast/pkg/client"
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
	what := "new events"
	switch {
	case all:
		what = "the whole live state, then new events"
	case from != "":
		what = "events after " + from
	}
	where := c.cl.BaseURL()
	fmt.Fprintf(env.stderr, "tail: following %s: %s (Ctrl-C to stop)\n", where, what)

	err = c.cl.Tail(ctx, client.TailOptions{
		From:        from,
		All:         all,
		IdleTimeout: tailIdleTimeout,
		OnConnect: func(reconnected bool) {
			if reconnected {
				fmt.Fprintf(env.stderr, "tail: reconnected to %s\n", where)
			}
		},
		OnDisconnect: func(err error) {
			fmt.Fprintf(env.stderr, "tail: %s; reconnecting\n", printable(strings.TrimPrefix(err.Error(), "sse: ")))
		},
	}, func(ev sse.Event) error {
		if asJSON {
			return printEventJSON(env.stdout, ev)
		}
		return printEventLine(env.stdout, ev, time.Now())
	})
	var ae *client.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return &exitError{exitFailure, fmt.Errorf("tail: no event stream at %s: check --server", redactURL(c.cl.URL("/v1/events", nil)))}
	case errors.As(err, &ae):
		return c.statusError(ae, "tail")
	case err == nil:
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
