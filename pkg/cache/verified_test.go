package cache

import (
	"hash/maphash"
	"strconv"
	"testing"
	"time"
)

type testClaims struct {
	Sub string
	N   int
}

func TestVerified(t *testing.T) {
	exp := t0.Add(time.Hour)
	cases := []struct {
		name   string
		setup  func(v *Verified[testClaims])
		raw    string
		now    time.Time
		want   testClaims
		wantOK bool
	}{
		{
			name:   "hit",
			setup:  func(v *Verified[testClaims]) { v.Add("tok-a", testClaims{Sub: "a"}, exp) },
			raw:    "tok-a",
			now:    t0,
			want:   testClaims{Sub: "a"},
			wantOK: true,
		},
		{
			name:  "other token",
			setup: func(v *Verified[testClaims]) { v.Add("tok-a", testClaims{Sub: "a"}, exp) },
			raw:   "tok-b",
			now:   t0,
		},
		{
			name:  "prefix of a cached token",
			setup: func(v *Verified[testClaims]) { v.Add("tok-a", testClaims{Sub: "a"}, exp) },
			raw:   "tok-",
			now:   t0,
		},
		{
			name:  "expired",
			setup: func(v *Verified[testClaims]) { v.Add("tok-a", testClaims{Sub: "a"}, exp) },
			raw:   "tok-a",
			now:   exp,
		},
		{
			name:   "last instant",
			setup:  func(v *Verified[testClaims]) { v.Add("tok-a", testClaims{Sub: "a"}, exp) },
			raw:    "tok-a",
			now:    exp.Add(-time.Nanosecond),
			want:   testClaims{Sub: "a"},
			wantOK: true,
		},
		{
			name:  "zero expiry not cached",
			setup: func(v *Verified[testClaims]) { v.Add("tok-a", testClaims{Sub: "a"}, time.Time{}) },
			raw:   "tok-a",
			now:   t0,
		},
		{
			name: "replaced",
			setup: func(v *Verified[testClaims]) {
				v.Add("tok-a", testClaims{Sub: "a"}, exp)
				v.Add("tok-a", testClaims{Sub: "a", N: 2}, exp)
			},
			raw:    "tok-a",
			now:    t0,
			want:   testClaims{Sub: "a", N: 2},
			wantOK: true,
		},
		{
			name: "purged",
			setup: func(v *Verified[testClaims]) {
				v.Add("tok-a", testClaims{Sub: "a"}, exp)
				v.Purge()
			},
			raw: "tok-a",
			now: t0,
		},
		{
			// An entry for "tok-a" stored under the hash of "tok-b", as a
			// 64-bit collision would: neither token may get its claims.
			name: "hash collision",
			setup: func(v *Verified[testClaims]) {
				v.lru.Add(maphash.String(v.seed, "tok-b"), verifiedEntry[testClaims]{raw: "tok-a", claims: testClaims{Sub: "a"}, expires: exp})
			},
			raw: "tok-b",
			now: t0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerified[testClaims](4)
			tc.setup(v)
			got, ok := v.Get(tc.raw, tc.now)
			if ok != tc.wantOK || got != tc.want {
				t.Fatalf("Get(%q) = %+v, %v; want %+v, %v", tc.raw, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestVerifiedExpiredEntryIsDropped(t *testing.T) {
	v := NewVerified[testClaims](4)
	v.Add("tok-a", testClaims{}, t0.Add(time.Second))
	if _, ok := v.Get("tok-a", t0.Add(time.Second)); ok {
		t.Fatal("hit on an expired token")
	}
	if n := v.Len(); n != 0 {
		t.Fatalf("Len = %d after an expired lookup, want 0", n)
	}
}

func TestVerifiedEvictsLeastRecentlyUsed(t *testing.T) {
	v := NewVerified[testClaims](2)
	exp := t0.Add(time.Hour)
	v.Add("a", testClaims{Sub: "a"}, exp)
	v.Add("b", testClaims{Sub: "b"}, exp)
	if _, ok := v.Get("a", t0); !ok { // a is now the most recent
		t.Fatal("miss on a")
	}
	v.Add("c", testClaims{Sub: "c"}, exp) // evicts b
	for raw, want := range map[string]bool{"a": true, "b": false, "c": true} {
		if _, ok := v.Get(raw, t0); ok != want {
			t.Errorf("Get(%q) ok = %v, want %v", raw, ok, want)
		}
	}
	if n := v.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

func TestVerifiedDefaultCapacity(t *testing.T) {
	v := NewVerified[int](0)
	for i := range DefaultVerifiedCapacity + 10 {
		v.Add(strconv.Itoa(i), i, t0.Add(time.Hour))
	}
	if n := v.Len(); n != DefaultVerifiedCapacity {
		t.Fatalf("Len = %d, want %d", n, DefaultVerifiedCapacity)
	}
}

func TestVerifiedGetDoesNotAllocate(t *testing.T) {
	v := NewVerified[map[string]any](8)
	v.Add("tok-a", map[string]any{"sub": "a"}, t0.Add(time.Hour))
	for _, raw := range []string{"tok-a", "tok-b"} {
		if n := testing.AllocsPerRun(100, func() { v.Get(raw, t0) }); n != 0 {
			t.Errorf("Get(%q) allocates %v times", raw, n)
		}
	}
}
