package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// defaultWait is how long revoke --wait waits without a value.
const defaultWait = 30 * time.Second

// waitPoll is how often revoke --wait asks how far the agents are.
const waitPoll = 200 * time.Millisecond

// waitFlag is --wait[=timeout]: a boolean flag that may carry a duration.
type waitFlag struct {
	set     bool
	timeout time.Duration
}

func (w *waitFlag) String() string {
	if w == nil || !w.set {
		return ""
	}
	return w.timeout.String()
}

func (w *waitFlag) IsBoolFlag() bool { return true }

func (w *waitFlag) Set(s string) error {
	switch s {
	case "true":
		w.set, w.timeout = true, defaultWait
		return nil
	case "false":
		w.set = false
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want --wait or --wait=DURATION (such as 10s or 2m)")
	}
	w.set, w.timeout = true, d
	return nil
}

// agentRef names an agent in an enforcement.
type agentRef struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
	Node     string `json:"node"`
}

func (a agentRef) String() string {
	return printable(a.Name) + " (instance " + printable(a.Instance) + " on " + printable(a.Node) + ")"
}

// enforcementAnswer is the enforcement of GET /v1/revocations/{key}.
type enforcementAnswer struct {
	Agents        int        `json:"agents"`
	Applied       int        `json:"applied"`
	LastAppliedAt *time.Time `json:"last_applied_at,omitempty"`
	Pending       []agentRef `json:"pending"`
}

// waitResult is what revoke --wait --json prints after the revocation.
type waitResult struct {
	Enforced bool `json:"enforced"`
	enforcementAnswer
	Milliseconds int64 `json:"ms"`
}

// waitEnforced polls the revocation's enforcement until every connected
// agent applied it or the timeout passes. It prints a progress line to
// stderr when the count changes and the outcome to stdout; "not
// everywhere" is an exitNotEnforced error naming the pending agents.
func waitEnforced(ctx context.Context, c *apiConn, env cliEnv, key string, timeout time.Duration, start time.Time, asJSON bool) error {
	deadline := start.Add(timeout)
	last := ""
	var e enforcementAnswer
	for {
		a, err := c.do(ctx, "GET", "/v1/revocations/"+key, nil, nil, nil)
		if err != nil {
			return err
		}
		if a.status != 200 {
			return c.statusError(a, "revoke --wait: read the enforcement of "+key)
		}
		var body struct {
			Enforcement *enforcementAnswer `json:"enforcement"`
		}
		if err := json.Unmarshal(a.body, &body); err != nil || body.Enforcement == nil {
			return &exitError{exitFailure, fmt.Errorf("revoke --wait: the server does not report enforcement (an older broadcaster?)")}
		}
		e = *body.Enforcement
		done := len(e.Pending) == 0
		if !done && time.Now().Before(deadline) {
			if p := progressLine(e); p != last {
				fmt.Fprintln(env.stderr, p)
				last = p
			}
			select {
			case <-ctx.Done():
				return &exitError{exitFailure, fmt.Errorf("revoke --wait: %w", errInterrupted)}
			case <-time.After(min(waitPoll, time.Until(deadline))):
			}
			continue
		}
		ms := time.Since(start).Milliseconds()
		if asJSON {
			b, _ := json.Marshal(waitResult{Enforced: done, enforcementAnswer: e, Milliseconds: ms})
			fmt.Fprintf(env.stdout, "%s\n", b)
		} else {
			fmt.Fprintf(env.stdout, "enforced by %d of %d agents in %d ms\n", e.Applied, e.Agents, ms)
		}
		if done {
			return nil
		}
		return &exitError{exitNotEnforced, fmt.Errorf("not enforced everywhere within %v: %d of %d agents have not applied it: %s",
			timeout, len(e.Pending), e.Agents, pendingList(e.Pending))}
	}
}

func progressLine(e enforcementAnswer) string {
	return "waiting: " + strconv.Itoa(e.Applied) + " of " + strconv.Itoa(e.Agents) + " agents applied it; pending: " + pendingList(e.Pending)
}

func pendingList(p []agentRef) string {
	names := make([]string, len(p))
	for i, a := range p {
		names[i] = a.String()
	}
	return strings.Join(names, ", ")
}
