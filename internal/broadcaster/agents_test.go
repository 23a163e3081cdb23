package broadcaster_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
)

type agentsList struct {
	Agents []struct {
		Name           string     `json:"name"`
		Instance       string     `json:"instance"`
		Node           string     `json:"node"`
		ConnectedAt    time.Time  `json:"connected_at"`
		Connected      bool       `json:"connected"`
		DisconnectedAt *time.Time `json:"disconnected_at"`
		Applied        string     `json:"applied"`
		Delivered      string     `json:"delivered"`
		Lag            *uint64    `json:"lag"`
		Fresh          bool       `json:"fresh"`
	} `json:"agents"`
}

// enforcement is how far a revocation is applied by the connected agents
// (the enforcement of docs/api.md).
type enforcement struct {
	Agents        int        `json:"agents"`
	Applied       int        `json:"applied"`
	LastAppliedAt *time.Time `json:"last_applied_at,omitempty"`
	Pending       []struct {
		Name     string `json:"name"`
		Instance string `json:"instance"`
		Node     string `json:"node"`
	} `json:"pending"`
}

type withEnforcement struct {
	events.Revocation
	Enforcement *enforcement `json:"enforcement"`
}

func report(t *testing.T, base, instance, applied string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"instance": instance, "applied": applied})
	return do(t, "POST", base+"/v1/agents/applied", string(body))
}

func getEnforcement(t *testing.T, base, key string) enforcement {
	t.Helper()
	a := do(t, "GET", base+"/v1/revocations/"+key, "")
	if a.status != 200 {
		t.Fatalf("GET %s: %d %s", key, a.status, a.body)
	}
	var r withEnforcement
	a.decode(t, &r)
	if r.Enforcement == nil {
		t.Fatalf("GET %s: no enforcement in %s", key, a.body)
	}
	return *r.Enforcement
}

func TestAgentReceipts(t *testing.T) {
	t.Parallel()
	// a hung-up stream is noticed when a heartbeat to it fails: a short
	// interval makes that soon
	_, base := startServer(t, func(c *broadcaster.Config) { c.Heartbeat = 100 * time.Millisecond })
	east := subscribe(t, base+"/v1/events", broadcaster.AgentHeader, "api-east; instance=e1")
	west := subscribe(t, base+"/v1/events", broadcaster.AgentHeader, "api-west; instance=w1")
	east.until(t, events.TypeSynced)
	west.until(t, events.TypeSynced)

	rev := post(t, base, `{"sub":"alice","reason":"stolen laptop"}`)
	east.until(t, events.TypeRevoke)
	if a := report(t, base, "e1", rev.ID); a.status != http.StatusNoContent {
		t.Fatalf("report: %d %s", a.status, a.body)
	}

	t.Run("enforcement names the agent that has not applied", func(t *testing.T) {
		e := getEnforcement(t, base, rev.Key)
		if e.Agents != 2 || e.Applied != 1 || len(e.Pending) != 1 || e.Pending[0].Name != "api-west" || e.Pending[0].Instance != "w1" {
			t.Fatalf("enforcement = %+v, want 1 of 2 with api-west pending", e)
		}
	})
	t.Run("wait gives up at its timeout with the pending agents", func(t *testing.T) {
		a := do(t, "POST", base+"/v1/revocations?wait=100ms", `{"sub":"bob"}`)
		var r withEnforcement
		a.decode(t, &r)
		if a.status != http.StatusCreated || r.Enforcement == nil || r.Enforcement.Agents != 2 || len(r.Enforcement.Pending) != 2 {
			t.Fatalf("POST ?wait=100ms: %d %s", a.status, a.body)
		}
	})
	t.Run("the agents list", func(t *testing.T) {
		var l agentsList
		do(t, "GET", base+"/v1/agents", "").decode(t, &l)
		if len(l.Agents) != 2 {
			t.Fatalf("agents = %+v", l.Agents)
		}
		e, w := l.Agents[0], l.Agents[1]
		if e.Name != "api-east" || !e.Connected || !e.Fresh || e.Applied != rev.ID || e.Lag == nil || *e.Lag != 1 || e.Node == "" {
			t.Errorf("api-east = %+v, want connected, fresh, applied %s, lag 1 (bob's revocation after it)", e, rev.ID)
		}
		if w.Name != "api-west" || !w.Connected || w.Fresh || w.Applied != "" || w.Lag != nil {
			t.Errorf("api-west = %+v, want connected, not fresh, nothing applied", w)
		}
	})

	// west applies everything: a waiting write returns as soon as it does,
	// not at the end of its wait (5m, the most allowed: beyond the hang
	// limit, so that a write that waits it out fails the test)
	done := make(chan answer, 1)
	go func() { done <- do(t, "POST", base+"/v1/revocations?wait=5m", `{"sub":"carol"}`) }()
	var carol string
	for carol == "" {
		if ev := west.next(t); ev.Type == events.TypeRevoke && strings.Contains(string(ev.Data), `"carol"`) {
			carol = ev.ID
		}
	}
	for _, inst := range []string{"e1", "w1"} {
		if a := report(t, base, inst, carol); a.status != http.StatusNoContent {
			t.Fatalf("report %s: %d %s", inst, a.status, a.body)
		}
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(testutil.HangLimit):
		t.Fatalf("POST ?wait=5m did not return within %v of every agent applying", testutil.HangLimit)
	}
	var r withEnforcement
	a.decode(t, &r)
	if r.Enforcement == nil || r.Enforcement.Agents != 2 || r.Enforcement.Applied != 2 || len(r.Enforcement.Pending) != 0 || r.Enforcement.LastAppliedAt == nil {
		t.Fatalf("POST ?wait=5m: %s", a.body)
	}

	t.Run("a disconnected agent is listed as such and no longer counted", func(t *testing.T) {
		west.resp.Body.Close()
		testutil.Eventually(t, testutil.HangLimit, "api-west disconnected", func() bool {
			var l agentsList
			do(t, "GET", base+"/v1/agents", "").decode(t, &l)
			for _, a := range l.Agents {
				if a.Instance == "w1" {
					return !a.Connected && a.DisconnectedAt != nil
				}
			}
			return false
		})
		if e := getEnforcement(t, base, rev.Key); e.Agents != 1 || e.Applied != 1 {
			t.Fatalf("enforcement = %+v, want 1 of 1", e)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		body := string(do(t, "GET", base+"/metrics", "").body)
		for _, want := range []string{"revocast_broadcaster_agents_connected 1", "revocast_broadcaster_agent_applied_lag_count", "revocast_broadcaster_enforced_everywhere_seconds_count"} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

func TestAgentReportsRefused(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, nil)
	sub := subscribe(t, base+"/v1/events", broadcaster.AgentHeader, "api; instance=i1")
	sub.until(t, events.TypeSynced)
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", `nope`, 400},
		{"unknown field", `{"instance":"i1","applied":"1-1","x":1}`, 400},
		{"bad instance", `{"instance":"a b","applied":"1-1"}`, 400},
		{"bad event ID", `{"instance":"i1","applied":"seven"}`, 400},
		{"not subscribed here", `{"instance":"other","applied":"1-1"}`, 404},
		{"too large", `{"instance":"i1","applied":"1-1","pad":"` + strings.Repeat("x", 2000) + `"}`, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := do(t, "POST", base+"/v1/agents/applied", tc.body); a.status != tc.status {
				t.Fatalf("%s: %d %s, want %d", tc.body, a.status, a.body, tc.status)
			}
		})
	}
	for _, tc := range []struct{ name, header string }{
		{"no instance", "api"},
		{"empty name", "; instance=x"},
		{"bad instance", "api; instance=a.b"},
	} {
		t.Run("header "+tc.name, func(t *testing.T) {
			if a := do(t, "GET", base+"/v1/events", "", broadcaster.AgentHeader, tc.header); a.status != 400 {
				t.Fatalf("%s: %d %s, want 400", tc.header, a.status, a.body)
			}
		})
	}
	t.Run("wait", func(t *testing.T) {
		for _, q := range []string{"wait=soon", "wait=-1s", "wait=6m"} {
			if a := do(t, "POST", base+"/v1/revocations?"+q, `{"sub":"x"}`); a.status != 400 {
				t.Fatalf("%s: %d %s, want 400", q, a.status, a.body)
			}
		}
	})
}
