package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

const listAbout = `Lists the live revocations, oldest first: a table (KEY, MATCHES, EXPIRES,
REASON, ACTOR), or with --json one JSON object per line. Without --all it shows
one page and, when there is more, prints on stderr the --after cursor of the next.

  revocast list
  revocast list --sub alice
  revocast list --all --json | jq -r .key`

// maxListPage is the server's largest page (internal/broadcaster's
// MaxListLimit).
const maxListPage = 1000

// maxReasonColumn bounds the REASON column; --json has the whole text.
const maxReasonColumn = 40

func cmdList(ctx context.Context, args []string, env cliEnv) error {
	var c apiConn
	var sub, jti, iss, kid, after string
	var limit int
	var all, asJSON bool
	fs := newCmdFlags("list", "[flags]", listAbout, env)
	fs.FlagSet.StringVar(&sub, "sub", "", "only revocations with this sub")
	fs.FlagSet.StringVar(&jti, "jti", "", "only revocations with this jti")
	fs.FlagSet.StringVar(&iss, "iss", "", "only revocations with this iss")
	fs.FlagSet.StringVar(&kid, "kid", "", "only revocations with this kid")
	fs.FlagSet.IntVar(&limit, "limit", 0, "revocations per page, 1-1000 (default 100, or 1000 with --all)")
	fs.FlagSet.StringVar(&after, "after", "", "start after this cursor (printed when there is a next page)")
	fs.FlagSet.BoolVar(&all, "all", false, "follow the pages to the end")
	fs.FlagSet.BoolVar(&asJSON, "json", false, "one JSON object per line instead of a table")
	c.addFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("list: unexpected argument %q (filters are flags: --sub, --jti, --iss, --kid)", pos[0])
	}
	if limit == 0 {
		limit = 100
		if all {
			limit = maxListPage
		}
	}
	if limit < 1 || limit > maxListPage {
		return usageErr("--limit must be 1 to %d", maxListPage)
	}
	if after != "" {
		if _, err := strconv.ParseUint(after, 10, 64); err != nil {
			return usageErr("--after %q: want the cursor printed by a previous list", after)
		}
	}
	if err := c.setup(fs, env); err != nil {
		return err
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(limit))
	for name, v := range map[string]string{"sub": sub, "jti": jti, "iss": iss, "kid": kid} {
		if v != "" {
			q.Set(name, v)
		}
	}

	var tw *tabwriter.Writer
	if !asJSON {
		tw = tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tMATCHES\tEXPIRES\tREASON\tACTOR")
	}
	// Each page advances the cursor (checked below), and the live state is
	// finite, so this ends; ctx ends it sooner.
	for page := 1; ; page++ {
		if after != "" {
			q.Set("after", after)
		}
		a, err := c.do(ctx, "GET", "/v1/revocations", q, nil, nil)
		if err != nil {
			return err
		}
		if a.status != 200 {
			return c.statusError(a, "list")
		}
		var answer struct {
			Revocations []json.RawMessage `json:"revocations"`
			Next        string            `json:"next"`
		}
		if err := json.Unmarshal(a.body, &answer); err != nil {
			return &exitError{exitFailure, fmt.Errorf("list: unexpected answer from the server: %w", err)}
		}
		for _, raw := range answer.Revocations {
			if asJSON {
				if err := compactLine(env.stdout, raw); err != nil {
					return err
				}
				continue
			}
			var r events.Revocation
			if err := json.Unmarshal(raw, &r); err != nil {
				return &exitError{exitFailure, fmt.Errorf("list: unexpected revocation from the server: %w", err)}
			}
			expires := "never"
			if !r.ExpiresAt.IsZero() {
				expires = r.ExpiresAt.UTC().Format(time.RFC3339)
			}
			reason := "-"
			if r.Reason != "" {
				reason = truncate(printable(r.Reason), maxReasonColumn)
			}
			actor := "-"
			if r.Actor != "" {
				actor = printable(r.Actor)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(r.Key), describeMatchers(&r), expires, reason, actor)
		}
		if answer.Next == "" {
			break
		}
		if answer.Next == after {
			return &exitError{exitFailure, fmt.Errorf("list: the server returned the same page cursor %q twice", printable(after))}
		}
		after = answer.Next
		if !all {
			fmt.Fprintf(env.stderr, "more revocations: run again with --after %s, or use --all\n", printable(after))
			break
		}
		if err := ctx.Err(); err != nil {
			return &exitError{exitFailure, fmt.Errorf("list: %w after %d pages", errInterrupted, page)}
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
