package cache

import (
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// TestKeyMemoNeverDecidesAlone: a memo shared by tokens whose key names
// differ (a key set refreshed under a new kid, another key attached by
// mistake, a second denylist) must decide exactly like no memo at all.
func TestKeyMemoNeverDecidesAlone(t *testing.T) {
	const thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	for _, tc := range []struct {
		name    string
		revoked string // kid of the revocation, "" for none
		tok     events.Token
		deny    bool
	}{
		{"no revocation", "", events.Token{Kid: "k1", KeyID: "k1", KeyThumbprint: thumb}, false},
		{"the key's kid", "k1", events.Token{KeyID: "k1", KeyThumbprint: thumb}, true},
		{"the key's thumbprint", thumb, events.Token{Kid: "k1", KeyID: "k1", KeyThumbprint: thumb}, true},
		{"the key's new kid", "k2", events.Token{Kid: "k2", KeyID: "k2", KeyThumbprint: thumb}, true},
		{"an alias", "k3", events.Token{KeyID: "k1", KeyThumbprint: thumb, KeyAliases: []string{"k3"}}, true},
		{"the header kid only", "liar", events.Token{Kid: "liar", KeyID: "k1", KeyThumbprint: thumb}, true},
		{"another key", "k1", events.Token{Kid: "k9", KeyID: "k9", KeyThumbprint: "other"}, false},
		{"another key named like the revoked one", thumb, events.Token{KeyID: "k1", KeyThumbprint: "other"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			memo := new(events.KeyMemo)
			first, second := newDenylist(t, nil), newDenylist(t, nil)
			for _, d := range []*Denylist{first, second} {
				if tc.revoked != "" {
					d.Apply(withKey(events.Revocation{Kid: tc.revoked, ExpiresAt: at(time.Hour)}))
				}
				// warm the memo with other names of "the same" key, as
				// tokens verified before a key set refresh would
				stale := events.Token{Kid: "k0", KeyID: "k0", KeyThumbprint: thumb, KeyAliases: []string{"k-old"}, KeyMemo: memo}
				d.Check(&stale, t0)
			}
			for _, d := range []*Denylist{first, second, first} {
				plain := tc.tok
				wantCheck(t, d, &plain, t0, tc.deny)
				memoized := tc.tok
				memoized.KeyMemo = memo
				wantCheck(t, d, &memoized, t0, tc.deny)
				wantCheck(t, d, &memoized, t0, tc.deny) // the memo now holds these names
			}
		})
	}
}
