package broadcaster_test

import (
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/broadcaster"
)

// TestGenericAuthErrors: with GenericAuthErrors every 401 has the same
// body, whatever was wrong with the credential; without it the body says
// whether one was missing or refused.
func TestGenericAuthErrors(t *testing.T) {
	t.Parallel()
	a, _, _ := keys(t)
	for _, generic := range []bool{false, true} {
		name := "detailed"
		if generic {
			name = "generic"
		}
		t.Run(name, func(t *testing.T) {
			_, base := startServer(t, func(c *broadcaster.Config) {
				c.Auth = a
				c.GenericAuthErrors = generic
			})
			bodies := map[string]string{}
			for what, h := range map[string][]string{
				"none":        nil,
				"unknown key": bearer("rvc_unknown"),
				"malformed":   {"Authorization", "Basic dXNlcjpwYXNz"},
				"a JWT":       bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x"),
			} {
				ans := do(t, "GET", base+"/v1/revocations", "", h...)
				if ans.status != 401 {
					t.Fatalf("%s: %d", what, ans.status)
				}
				bodies[string(ans.body)] = what
			}
			if generic {
				if len(bodies) != 1 {
					t.Fatalf("generic 401s differ: %q", bodies)
				}
				for b := range bodies {
					if b != `{"error":"`+genericAuthError+`"}`+"\n" {
						t.Fatalf("generic body %q", b)
					}
				}
			} else if len(bodies) != 2 || !strings.Contains(strings.Join(keysOf(bodies), " "), "invalid credentials") {
				t.Fatalf("detailed 401s: %q", bodies)
			}
		})
	}
}

// genericAuthError is the text of every 401 with GenericAuthErrors
// (docs/security.md).
const genericAuthError = "authentication failed"

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
