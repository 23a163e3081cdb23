package agent

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/revocast/revocast/internal/testutil"
)

type listedAgent struct {
	Name      string  `json:"name"`
	Instance  string  `json:"instance"`
	Connected bool    `json:"connected"`
	Applied   string  `json:"applied"`
	Lag       *uint64 `json:"lag"`
	Fresh     bool    `json:"fresh"`
}

func listAgents(t testing.TB, base string) []listedAgent {
	t.Helper()
	code, b, err := request("GET", base+"/v1/agents", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/agents: %d %s %v", code, b, err)
	}
	var l struct {
		Agents []listedAgent `json:"agents"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l.Agents
}

func TestReceipts(t *testing.T) {
	base := startBroadcaster(t, nil)
	a := newAgent(t, []string{base}, append(rsaOpts(t), WithName("checkout-api"))...)
	runAgent(t, a)
	if len(a.Instance()) != 16 || a.Name() != "checkout-api" {
		t.Fatalf("name %q instance %q", a.Name(), a.Instance())
	}

	t.Run("the agent is listed once synced", func(t *testing.T) {
		testutil.Eventually(t, testutil.HangLimit, "the agent listed as fresh", func() bool {
			l := listAgents(t, base)
			return len(l) == 1 && l[0].Name == "checkout-api" && l[0].Instance == a.Instance() && l[0].Connected && l[0].Fresh && l[0].Applied != ""
		})
	})
	t.Run("it reports each revocation it applied", func(t *testing.T) {
		for _, sub := range []string{"alice", "bob", "carol"} {
			rev := revoke(t, base, `{"sub":"`+sub+`"}`)
			testutil.Eventually(t, testutil.HangLimit, "the agent reporting "+rev.ID, func() bool {
				l := listAgents(t, base)
				return len(l) == 1 && l[0].Applied == rev.ID && l[0].Lag != nil && *l[0].Lag == 0
			})
		}
	})
	t.Run("a name the header cannot carry is refused", func(t *testing.T) {
		for _, name := range []string{"a;b", "tab\there", string(make([]byte, 200))} {
			if _, err := New([]string{base}, append(rsaOpts(t), WithName(name))...); err == nil {
				t.Errorf("name %q accepted", name)
			}
		}
	})
	t.Run("without a name nothing is reported", func(t *testing.T) {
		b := newAgent(t, []string{base}, rsaOpts(t)...)
		runAgent(t, b)
		if n := len(listAgents(t, base)); n != 1 {
			t.Fatalf("%d agents listed, want 1", n)
		}
		if b.Instance() != "" {
			t.Fatalf("instance %q without a name", b.Instance())
		}
	})
}
