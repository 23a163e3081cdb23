package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/revocast/revocast/pkg/client"
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

func agentString(a client.AgentRef) string {
	return printable(a.Name) + " (instance " + printable(a.Instance) + " on " + printable(a.Node) + ")"
}

// waitResult is what revoke --wait --json prints after the revocation.
type waitResult struct {
	Enforced bool `json:"enforced"`
	client.Enforcement
	Milliseconds int64 `json:"ms"`
}

// waitEnforced polls the revocation's enforcement until every connected
// agent applied it or the timeout passes. It prints a progress line to
// stderr when the count changes and the outcome to stdout; "not
// everywhere" is an exitNotEnforced error naming the pending agents.
func waitEnforced(ctx context.Context, c *apiConn, env cliEnv, key string, timeout time.Duration, start time.Time, asJSON bool) error {
	last := ""
	e, err := c.cl.WaitEnforced(ctx, key, client.WaitOptions{
		Deadline: start.Add(timeout),
		Poll:     waitPoll,
		OnProgress: func(e client.Enforcement) {
			if p := progressLine(e); p != last {
				fmt.Fprintln(env.stderr, p)
				last = p
			}
		},
	})
	switch {
	case errors.Is(err, client.ErrNoEnforcement):
		return &exitError{exitFailure, fmt.Errorf("revoke --wait: the server does not report enforcement (an older broadcaster?)")}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &exitError{exitFailure, fmt.Errorf("revoke --wait: %w", errInterrupted)}
	case err != nil:
		return c.fail(err, "GET", "revoke --wait: read the enforcement of "+key)
	}
	done := e.Done()
	ms := time.Since(start).Milliseconds()
	if asJSON {
		b, _ := json.Marshal(waitResult{Enforced: done, Enforcement: *e, Milliseconds: ms})
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

func progressLine(e client.Enforcement) string {
	return "waiting: " + strconv.Itoa(e.Applied) + " of " + strconv.Itoa(e.Agents) + " agents applied it; pending: " + pendingList(e.Pending)
}

func pendingList(p []client.AgentRef) string {
	names := make([]string, len(p))
	for i, a := range p {
		names[i] = agentString(a)
	}
	return strings.Join(names, ", ")
}
