package cache_test

import (
	"fmt"
	"time"

	"github.com/revocast/revocast/pkg/cache"
	"github.com/revocast/revocast/pkg/events"
)

func ExampleNew() {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	d := cache.New(cache.WithClock(func() time.Time { return now }))

	// Log alice out: her tokens issued before now are revoked, new ones are not.
	logout := &events.Revocation{
		Sub:          "alice",
		IssuedBefore: events.Time{Time: now},
		ExpiresAt:    events.Time{Time: now.Add(24 * time.Hour)},
	}
	logout.Key = logout.ComputeKey() // set by the broadcaster; Apply computes it if empty
	d.Apply(logout)

	old := &events.Token{Sub: "alice", IssuedAt: now.Add(-time.Hour).Unix(), HasIssuedAt: true}
	fresh := &events.Token{Sub: "alice", IssuedAt: now.Add(time.Minute).Unix(), HasIssuedAt: true}
	key, revoked := d.Check(old, now)
	fmt.Println(revoked, key == logout.Key)
	_, revoked = d.Check(fresh, now)
	fmt.Println(revoked)

	d.Lift(logout.Key)
	_, revoked = d.Check(old, now)
	fmt.Println(revoked)
	// Output:
	// true true
	// false
	// false
}

func ExampleDenylist_Check() {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	d := cache.New(cache.WithCapacity(1), cache.WithClock(func() time.Time { return now }))
	for _, jti := range []string{"a", "b", "c"} {
		d.Apply(&events.Revocation{JTI: jti, ExpiresAt: events.Time{Time: now.Add(time.Hour)}})
	}
	// Only "c" fits in the exact tier; "a" and "b" spilled but still deny.
	for _, jti := range []string{"a", "c", "d"} {
		key, revoked := d.Check(&events.Token{JTI: jti}, now)
		fmt.Printf("%s: revoked=%v exact=%v\n", jti, revoked, key != "")
	}
	st := d.Stats()
	fmt.Println("exact", st.Exact, "spilled", st.Spilled)

	// An hour plus the leeway later, everything has expired.
	later := now.Add(time.Hour + cache.DefaultLeeway)
	_, revoked := d.Check(&events.Token{JTI: "a"}, later)
	fmt.Println(revoked, d.Sweep(later))
	// Output:
	// a: revoked=true exact=false
	// c: revoked=true exact=true
	// d: revoked=false exact=false
	// exact 1 spilled 2
	// false 3
}

func ExampleNewVerified() {
	type claims struct{ Sub string }
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	v := cache.NewVerified[claims](cache.DefaultVerifiedCapacity)

	raw := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln" // a token that passed verification
	v.Add(raw, claims{Sub: "alice"}, now.Add(5*time.Minute))

	c, ok := v.Get(raw, now)
	fmt.Println(c.Sub, ok)
	_, ok = v.Get(raw, now.Add(5*time.Minute)) // expired with the token
	fmt.Println(ok)

	v.Add(raw, claims{Sub: "alice"}, now.Add(5*time.Minute))
	v.Purge() // the JWKS changed
	_, ok = v.Get(raw, now)
	fmt.Println(ok, v.Len())
	// Output:
	// alice true
	// false
	// false 0
}
