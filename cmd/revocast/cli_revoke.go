package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/pkg/events"
)

// matcherFlags are the flags that say what a revocation matches; revoke
// and lift share them.
type matcherFlags struct {
	jti, sub, iss, kid string
	claims             claimFlag
	ban                bool
}

func (m *matcherFlags) add(fs *envflag.Set) {
	fs.FlagSet.StringVar(&m.jti, "jti", "", "the token's jti: revoke one token")
	fs.FlagSet.StringVar(&m.sub, "sub", "", "the token's sub: every token of this subject")
	fs.FlagSet.StringVar(&m.iss, "iss", "", "the token's iss: scopes the other matchers to one issuer")
	fs.FlagSet.StringVar(&m.kid, "kid", "", "the kid in the token's header: a compromised signing key")
	fs.FlagSet.Var(&m.claims, "claim", "extra claim to match, repeatable: name=value (a string) or name:=json (a number or boolean, e.g. level:=3)")
	fs.FlagSet.BoolVar(&m.ban, "ban", false, "also match tokens issued later, until lifted or --expires-at (needs --sub, --kid or --claim)")
}

func (m *matcherFlags) given() bool {
	return m.jti != "" || m.sub != "" || m.iss != "" || m.kid != "" || len(m.claims) > 0 || m.ban
}

// revocation returns the matchers as a Revocation, claim values normalised
// as the server stores them (numbers as float64), so that ComputeKey gives
// the server's key.
func (m *matcherFlags) revocation() events.Revocation {
	r := events.Revocation{JTI: m.jti, Sub: m.sub, Iss: m.iss, Kid: m.kid, Ban: m.ban}
	if len(m.claims) > 0 {
		r.Claims = make(map[string]any, len(m.claims))
		for _, c := range m.claims {
			r.Claims[c.name] = c.value
		}
	}
	return r
}

// describe repeats the matcher flags, for messages.
func (m *matcherFlags) describe() string {
	var parts []string
	for _, f := range []struct{ name, v string }{{"jti", m.jti}, {"sub", m.sub}, {"iss", m.iss}, {"kid", m.kid}} {
		if f.v != "" {
			parts = append(parts, "--"+f.name+" "+quoteValue(f.v))
		}
	}
	for _, c := range m.claims {
		parts = append(parts, "--claim "+quoteValue(c.raw))
	}
	if m.ban {
		parts = append(parts, "--ban")
	}
	return strings.Join(parts, " ")
}

type claimArg struct {
	name  string
	value any // string, float64 or bool
	raw   string
}

// claimFlag is the repeatable --claim flag.
type claimFlag []claimArg

func (c *claimFlag) String() string {
	if c == nil {
		return ""
	}
	var s []string
	for _, a := range *c {
		s = append(s, a.raw)
	}
	return strings.Join(s, ",")
}

// Set parses name=value (the value is a string) or name:=json (a JSON
// number, boolean or string).
func (c *claimFlag) Set(s string) error {
	i := strings.IndexByte(s, '=')
	if i < 0 {
		return errors.New("want name=value, or name:=json for a number or boolean (level:=3)")
	}
	name, value := s[:i], s[i+1:]
	var v any = value
	if strings.HasSuffix(name, ":") {
		name = name[:len(name)-1]
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil || dec.More() {
			return fmt.Errorf("%q after := is not a JSON number, boolean or string", value)
		}
		switch t := x.(type) {
		case json.Number:
			f, err := t.Float64()
			if err != nil {
				return fmt.Errorf("%s: number out of range", t)
			}
			v = f
		case bool, string:
			v = t
		default:
			return fmt.Errorf("%s: a claim matcher is a string, number or boolean, not an object, array or null", value)
		}
	}
	if name == "" {
		return errors.New("empty claim name")
	}
	for _, a := range *c {
		if a.name == name {
			return fmt.Errorf("claim %q given twice", name)
		}
	}
	*c = append(*c, claimArg{name: name, value: v, raw: s})
	return nil
}

// flagOfField names the flag behind a field of the wire format, for errors
// found before anything is sent.
func flagOfField(field string) string {
	switch {
	case field == "":
		return "the revocation"
	case field == "claims" || strings.HasPrefix(field, "claims."):
		if name, ok := strings.CutPrefix(field, "claims."); ok {
			return "--claim " + name
		}
		return "--claim"
	}
	return "--" + strings.ReplaceAll(field, "_", "-")
}

// checkLocally runs the server's own decoder over a request body, so that
// mistakes are reported in terms of flags before anything is sent.
func checkLocally(body []byte) error {
	if _, err := events.DecodeRevocation(body); err != nil {
		var fe *events.FieldError
		if errors.As(err, &fe) {
			if fe.Field == "jti" && strings.Contains(fe.Problem, "at least one of") {
				return usageErr("say what to revoke: --jti, --sub, --kid or --claim (or --jti-file for many jtis)")
			}
			return usageErr("%s: %s", flagOfField(fe.Field), fe.Problem)
		}
		return usageErr("%v", err)
	}
	return nil
}

// parseTimeArg reads a time flag: RFC 3339 or Unix seconds, and with
// relative also "+90m" or "+7d" from now.
func parseTimeArg(flagName, s string, relative bool, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	want := "want RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds"
	if relative {
		want += ", or a duration from now such as +90m or +7d"
	}
	if relative && strings.HasPrefix(s, "+") {
		d, err := parseDuration(s[1:])
		if err != nil || d <= 0 {
			return time.Time{}, usageErr("--%s %q: %s", flagName, s, want)
		}
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	raw := []byte(strconv.Quote(s))
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		raw = []byte(s)
	}
	var t events.Time
	if err := t.UnmarshalJSON(raw); err != nil {
		return time.Time{}, usageErr("--%s %q: %v; %s", flagName, s, err, want)
	}
	return t.Time, nil
}

// parseDuration is time.ParseDuration plus whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, errors.New("bad number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// revokeFlags are the flags of revoke.
type revokeFlags struct {
	m            matcherFlags
	issuedBefore string
	expiresAt    string
	reason       string
	idemKey      string
	json         bool
	wait         waitFlag
	bulk         bulkFlags
}

const revokeAbout = `Posts a revocation and prints what the broadcaster stored: its key (the same
matchers always give the same key), its event id, what it matches and when it
expires. A token is revoked when it matches every matcher given.

  revocast revoke --jti 9f3c2a7e --expires-at +45m --reason "logged out"
  revocast revoke --sub alice                  # log alice out everywhere
  revocast revoke --sub mallory --ban --reason abuse
  revocast revoke --kid 2024-signing-key       # every token signed with this key
  revocast revoke --iss https://idp.example.com --claim tenant=acme

With --wait, waits until every agent connected to the cluster applied it:
"enforced by 3 of 3 agents in 41 ms"; exits with 7 at the timeout, naming the
agents that have not.

With --jti-file FILE (or - for stdin), posts one jti per line in batches and can
resume an interrupted run: see "Command-line client" in the README.`

func cmdRevoke(ctx context.Context, args []string, env cliEnv) error {
	var c apiConn
	var f revokeFlags
	fs := newCmdFlags("revoke", "[flags]", revokeAbout, env)
	f.m.add(fs)
	fs.FlagSet.StringVar(&f.issuedBefore, "issued-before", "", "only tokens issued before this time (RFC 3339 or Unix seconds); a --sub or --claim logout defaults to now")
	fs.FlagSet.StringVar(&f.expiresAt, "expires-at", "", "when the revocation may be forgotten: RFC 3339, Unix seconds or +duration (+90m, +7d); for --jti the token's exp")
	fs.FlagSet.StringVar(&f.reason, "reason", "", "free text for the audit trail")
	fs.FlagSet.StringVar(&f.idemKey, "idempotency-key", "", "makes retrying safe: a second post with the same key is answered with the first one's result")
	fs.FlagSet.BoolVar(&f.json, "json", false, "print the server's answer as JSON")
	fs.FlagSet.Var(&f.wait, "wait", "--wait or --wait=DURATION (default 30s): wait until every connected agent applied the revocation; prints \"enforced by N of N agents in T ms\", exits with 7 naming the agents that have not")
	f.bulk.add(fs)
	c.addFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("revoke: unexpected argument %q (matchers are flags: --jti, --sub, --kid, --claim)", pos[0])
	}
	now := time.Now()
	var expires time.Time
	if f.expiresAt != "" {
		if expires, err = parseTimeArg("expires-at", f.expiresAt, true, now); err != nil {
			return err
		}
	}
	if f.bulk.file != "" {
		if f.wait.set {
			return usageErr("--wait goes with one revocation, not --jti-file")
		}
		return runBulk(ctx, env, fs, &c, &f, expires, now)
	}
	if f.bulk.set(fs) {
		return usageErr("--state, --batch-size, --concurrency, --retries and --progress go with --jti-file")
	}
	rev := f.m.revocation()
	rev.Reason = f.reason
	rev.ExpiresAt = events.Time{Time: expires}
	if f.issuedBefore != "" {
		t, err := parseTimeArg("issued-before", f.issuedBefore, false, now)
		if err != nil {
			return err
		}
		rev.IssuedBefore = events.Time{Time: t}
	}
	body, err := json.Marshal(&rev)
	if err != nil {
		return err
	}
	if err := checkLocally(body); err != nil {
		return err
	}
	if err := c.setup(fs, env); err != nil {
		return err
	}
	hdr := map[string]string{}
	if f.idemKey != "" {
		hdr["Idempotency-Key"] = f.idemKey
	}
	start := time.Now()
	a, err := c.do(ctx, "POST", "/v1/revocations", nil, body, hdr)
	if err != nil {
		return err
	}
	if a.status != 200 && a.status != 201 {
		return c.statusError(a, "revoke")
	}
	var stored struct {
		events.Revocation
		Status string `json:"status"`
	}
	if f.json {
		if err := compactLine(env.stdout, a.body); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(a.body, &stored); err != nil {
		return &exitError{exitFailure, fmt.Errorf("revoke: unexpected answer from the server: %w", err)}
	}
	if !f.json {
		if err := printStored(env.stdout, &stored.Revocation, stored.Status, time.Now()); err != nil {
			return err
		}
	}
	if !f.wait.set || stored.Status == "expired" {
		return nil
	}
	return waitEnforced(ctx, &c, env, stored.Key, f.wait.timeout, start, f.json)
}

// printStored prints a stored revocation as aligned "field value" lines.
func printStored(w io.Writer, r *events.Revocation, status string, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch status {
	case "duplicate":
		status = "duplicate (an earlier request with this Idempotency-Key stored it)"
	case "expired":
		status = "expired (past expires_at + the expiry grace: not published)"
	}
	fmt.Fprintf(tw, "status\t%s\n", printable(status))
	fmt.Fprintf(tw, "key\t%s\n", printable(r.Key))
	if r.ID != "" {
		fmt.Fprintf(tw, "id\t%s\n", printable(r.ID))
	}
	fmt.Fprintf(tw, "matches\t%s\n", describeMatchers(r))
	fmt.Fprintf(tw, "expires\t%s\n", describeExpiry(r, now))
	if r.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", printable(r.Reason))
	}
	if r.Actor != "" {
		fmt.Fprintf(tw, "actor\t%s\n", printable(r.Actor))
	}
	return tw.Flush()
}

// describeMatchers says what a revocation matches, as key=value pairs.
func describeMatchers(r *events.Revocation) string {
	var parts []string
	for _, f := range []struct{ name, v string }{{"jti", r.JTI}, {"sub", r.Sub}, {"iss", r.Iss}, {"kid", r.Kid}} {
		if f.v != "" {
			parts = append(parts, f.name+"="+quoteValue(f.v))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Claims)) {
		parts = append(parts, "claims."+quoteValue(name)+"="+claimText(r.Claims[name]))
	}
	if r.Ban {
		parts = append(parts, "ban")
	}
	if !r.IssuedBefore.IsZero() {
		parts = append(parts, "issued_before="+r.IssuedBefore.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, " ")
}

// claimText prints a claim value; a string that would read as a number or
// boolean is quoted.
func claimText(v any) string {
	switch t := v.(type) {
	case string:
		if _, err := strconv.ParseFloat(t, 64); err == nil || t == "true" || t == "false" {
			return strconv.Quote(t)
		}
		return quoteValue(t)
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	b, _ := json.Marshal(v)
	return printable(string(b))
}

func describeExpiry(r *events.Revocation, now time.Time) string {
	if r.ExpiresAt.IsZero() {
		return "never (until lifted)"
	}
	t := r.ExpiresAt.UTC()
	s := t.Format(time.RFC3339)
	if d := t.Sub(now); d >= 0 {
		return s + " (in " + humanDuration(d) + ")"
	} else {
		return s + " (" + humanDuration(-d) + " ago)"
	}
}

// humanDuration rounds d to two units: 3d4h, 23h59m, 4m10s, 9s.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

const liftAbout = `Lifts a revocation: tokens it matched are accepted again. Name it by its key
(printed by revoke and list), or by the same matcher flags it was posted with:
the key is computed locally from them.

  revocast lift 986f32452606733205c8f7e1b38bcb24 --reason "appeal granted"
  revocast lift --sub mallory --ban --reason "appeal granted"

Exits with 3 when no live revocation has that key.`

func cmdLift(ctx context.Context, args []string, env cliEnv) error {
	var c apiConn
	var m matcherFlags
	var reason, idemKey string
	var asJSON bool
	fs := newCmdFlags("lift", "KEY | MATCHER FLAGS [flags]", liftAbout, env)
	m.add(fs)
	fs.FlagSet.StringVar(&reason, "reason", "", "free text for the audit trail")
	fs.FlagSet.StringVar(&idemKey, "idempotency-key", "", "makes retrying safe: a second lift with the same key is answered with the first one's result")
	fs.FlagSet.BoolVar(&asJSON, "json", false, "print the server's answer as JSON")
	c.addFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var key, from string
	switch {
	case len(pos) > 1:
		return usageErr("lift: one KEY at a time (got %d arguments)", len(pos))
	case len(pos) == 1 && m.given():
		return usageErr("lift: give a KEY or matcher flags, not both")
	case len(pos) == 1:
		key = strings.ToLower(strings.TrimSpace(pos[0]))
		if !events.ValidKey(key) {
			return usageErr("lift: %q is not a key: want the 32 hex digits printed by revoke or list", pos[0])
		}
	case m.given():
		rev := m.revocation()
		body, err := json.Marshal(&rev)
		if err != nil {
			return err
		}
		if err := checkLocally(body); err != nil {
			return err
		}
		key, from = rev.ComputeKey(), " (computed from "+m.describe()+")"
	default:
		return usageErr("lift: give the KEY of the revocation, or the matcher flags it was posted with (--jti, --sub, --iss, --kid, --claim, --ban)")
	}
	if err := c.setup(fs, env); err != nil {
		return err
	}
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	hdr := map[string]string{}
	if idemKey != "" {
		hdr["Idempotency-Key"] = idemKey
	}
	a, err := c.do(ctx, "DELETE", "/v1/revocations/"+key, q, nil, hdr)
	if err != nil {
		return err
	}
	if a.status != 200 {
		return c.statusError(a, "lift "+key+from)
	}
	if asJSON {
		return compactLine(env.stdout, a.body)
	}
	var lifted struct {
		Key    string `json:"key"`
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(a.body, &lifted); err != nil {
		return &exitError{exitFailure, fmt.Errorf("lift: unexpected answer from the server: %w", err)}
	}
	status := lifted.Status
	if status == "duplicate" {
		status = "duplicate (an earlier request with this Idempotency-Key lifted it)"
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "status\t%s\nkey\t%s\nid\t%s\n", printable(status), printable(lifted.Key), printable(lifted.ID))
	return tw.Flush()
}
