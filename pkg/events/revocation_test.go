package events

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func prepared(t *testing.T, body string) Revocation {
	t.Helper()
	r, err := DecodeRevocation([]byte(body))
	if err != nil {
		t.Fatalf("DecodeRevocation(%s): %v", body, err)
	}
	if err := (Policy{}).Prepare(&r, now); err != nil {
		t.Fatalf("Prepare(%s): %v", body, err)
	}
	return r
}

func TestDecodeRevocationErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"unknown field", `{"jti":"a","color":"red"}`, "color"},
		{"server field key", `{"jti":"a","key":"abc"}`, "key"},
		{"server field actor", `{"jti":"a","actor":"me"}`, "actor"},
		{"server field seq", `{"jti":"a","seq":3}`, "seq"},
		{"no matcher", `{"reason":"x"}`, "jti"},
		{"empty object", `{}`, "jti"},
		{"empty jti", `{"jti":""}`, "jti"},
		{"jti wrong type", `{"jti":42}`, "jti"},
		{"ban wrong type", `{"sub":"a","ban":"yes"}`, "ban"},
		{"bad time string", `{"sub":"a","issued_before":"yesterday"}`, "issued_before"},
		{"bad time type", `{"jti":"a","expires_at":true}`, "expires_at"},
		{"negative unix", `{"jti":"a","expires_at":-5}`, "expires_at"},
		{"huge unix", `{"jti":"a","expires_at":1e300}`, "expires_at"},
		{"before 1970 in UTC", `{"sub":"a","issued_before":"1970-01-01T00:30:00+14:00"}`, "issued_before"},
		{"expires before 1970 in UTC", `{"jti":"a","expires_at":"1970-01-01T13:59:59+14:00"}`, "expires_at"},
		{"after 9999 in UTC", `{"jti":"a","expires_at":"9999-12-31T23:30:00-01:00"}`, "expires_at"},
		{"finer than a nanosecond", `{"jti":"a","expires_at":"2030-01-01T00:00:00.1234567891Z"}`, "expires_at"},
		{"unix finer than a nanosecond", `{"jti":"a","expires_at":1900000000.0000000001}`, "expires_at"},
		{"unix tiny", `{"jti":"a","expires_at":1e-300}`, "expires_at"},
		{"unix literal too long", `{"jti":"a","expires_at":1900000000.` + strings.Repeat("0", 80) + `}`, "expires_at"},
		{"claim object value", `{"claims":{"tenant":{"a":1}}}`, "claims.tenant"},
		{"claim null value", `{"claims":{"tenant":null}}`, "claims.tenant"},
		{"claim reserved", `{"claims":{"sub":"alice"}}`, "claims.sub"},
		{"claims empty", `{"claims":{}}`, "claims"},
		{"claims not object", `{"claims":[1]}`, "claims"},
		{"jti too long", `{"jti":"` + strings.Repeat("x", MaxValueLength+1) + `"}`, "jti"},
		{"reason too long", `{"jti":"a","reason":"` + strings.Repeat("x", MaxReasonLength+1) + `"}`, "reason"},
		{"ban with jti", `{"jti":"a","ban":true}`, "ban"},
		{"issued_before with jti", `{"jti":"a","issued_before":1}`, "issued_before"},
		{"issued_before with ban", `{"sub":"a","ban":true,"issued_before":1}`, "issued_before"},
		{"array body", `[{"jti":"a"}]`, ""},
		{"trailing data", `{"jti":"a"} {"jti":"b"}`, ""},
		{"truncated", `{"jti":"a"`, ""},
		{"empty body", ``, ""},
		{"not json", `jti=a`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRevocation([]byte(tc.body))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %T, want *FieldError", err)
			}
			if fe.Field != tc.field {
				t.Fatalf("field = %q (%v), want %q", fe.Field, err, tc.field)
			}
			if fe.Problem == "" {
				t.Fatal("empty problem")
			}
		})
	}
}

// TestTimesAreStoredExactly: an accepted time is stored as the instant it
// names, in UTC, to the nanosecond, and decodes back to that instant.
func TestTimesAreStoredExactly(t *testing.T) {
	tests := []struct {
		name, value string
		want        time.Time
	}{
		{"unix", `1900000000`, time.Unix(1900000000, 0)},
		{"unix decimal fraction", `1900000000.123`, time.Unix(1900000000, 123000000)},
		{"unix nanoseconds", `1900000000.000000001`, time.Unix(1900000000, 1)},
		{"unix exponent", `1.9e9`, time.Unix(1900000000, 0)},
		{"unix fraction with exponent", `19000000001234e-4`, time.Unix(1900000000, 123400000)},
		{"offset east", `"2030-01-01T10:00:00+14:00"`, time.Date(2029, 12, 31, 20, 0, 0, 0, time.UTC)},
		{"offset west", `"2029-12-31T14:00:00.5-06:00"`, time.Date(2029, 12, 31, 20, 0, 0, 5e8, time.UTC)},
		{"epoch", `"1970-01-01T00:00:00Z"`, time.Unix(0, 0)},
		{"epoch from the east", `"1970-01-01T14:00:00+14:00"`, time.Unix(0, 0)},
		{"last second", `"9999-12-31T23:59:59Z"`, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRevocation([]byte(`{"kid":"k","expires_at":` + tc.value + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.ExpiresAt.Time; !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("stored %v, want %v", got, tc.want.UTC())
			}
			out, _ := json.Marshal(&r)
			var back Revocation
			if err := json.Unmarshal(out, &back); err != nil || !back.ExpiresAt.Equal(tc.want) {
				t.Fatalf("%s decodes to %v, %v", out, back.ExpiresAt, err)
			}
		})
	}
}

// TestPrepareRefusesDefaultExpiryPastRange: issued_before plus L must
// still be a time an agent can decode.
func TestPrepareRefusesDefaultExpiryPastRange(t *testing.T) {
	r, err := DecodeRevocation([]byte(`{"sub":"a","issued_before":"9999-12-31T23:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	var fe *FieldError
	if err := (Policy{}).Prepare(&r, now); !errors.As(err, &fe) || fe.Field != "expires_at" {
		t.Fatalf("Prepare = %v, stored expires_at %v", err, r.ExpiresAt)
	}
}

func TestPrepareDefaults(t *testing.T) {
	const L = DefaultMaxTokenLifetime
	tests := []struct {
		name                    string
		body                    string
		issuedBefore, expiresAt time.Time // zero: must stay unset
	}{
		{"jti expires after L", `{"jti":"t1"}`, time.Time{}, now.Add(L)},
		{"jti keeps its expires_at", `{"jti":"t1","expires_at":"2026-11-23T13:00:00Z"}`, time.Time{}, now.Add(time.Hour)},
		{"jti unix expires_at", `{"jti":"t1","expires_at":1795442400}`, time.Time{}, time.Unix(1795442400, 0)},
		{"sub logout", `{"sub":"alice"}`, now, now.Add(L)},
		{"sub logout explicit issued_before", `{"sub":"alice","issued_before":"2026-11-23T11:00:00Z"}`, now.Add(-time.Hour), now.Add(L - time.Hour)},
		{"ban until lifted", `{"sub":"alice","ban":true}`, time.Time{}, time.Time{}},
		{"ban with expiry", `{"sub":"alice","ban":true,"expires_at":"2026-12-01T00:00:00Z"}`, time.Time{}, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"kid ignores iat", `{"kid":"k1"}`, time.Time{}, time.Time{}},
		{"kid with issued_before", `{"kid":"k1","issued_before":"2026-11-23T10:00:00Z"}`, now.Add(-2 * time.Hour), now.Add(L - 2*time.Hour)},
		{"tenant logout", `{"iss":"https://idp","claims":{"tenant":"acme"}}`, now, now.Add(L)},
		{"jti and sub", `{"jti":"t1","sub":"alice"}`, time.Time{}, now.Add(L)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := prepared(t, tc.body)
			if !r.IssuedBefore.Equal(tc.issuedBefore) {
				t.Errorf("issued_before = %v, want %v", r.IssuedBefore, tc.issuedBefore)
			}
			if !r.ExpiresAt.Equal(tc.expiresAt) {
				t.Errorf("expires_at = %v, want %v", r.ExpiresAt, tc.expiresAt)
			}
			if !r.RevokedAt.Equal(now) {
				t.Errorf("revoked_at = %v, want %v", r.RevokedAt, now)
			}
			if !ValidKey(r.Key) {
				t.Errorf("key %q is not valid", r.Key)
			}
		})
	}
}

func TestPrepareMaxExpiry(t *testing.T) {
	r, err := DecodeRevocation([]byte(`{"jti":"t","expires_at":"2030-01-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	err = Policy{MaxExpiry: 365 * 24 * time.Hour}.Prepare(&r, now)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "expires_at" {
		t.Fatalf("err = %v, want a FieldError on expires_at", err)
	}
}

func TestExpired(t *testing.T) {
	r := prepared(t, `{"jti":"t","expires_at":"2026-11-23T12:30:00Z"}`)
	if r.Expired(now, 0) {
		t.Error("expired too early")
	}
	if !r.Expired(now.Add(30*time.Minute), 0) {
		t.Error("not expired at expires_at")
	}
	if r.Expired(now.Add(30*time.Minute), time.Minute) {
		t.Error("leeway ignored")
	}
	ban := prepared(t, `{"sub":"a","ban":true}`)
	if ban.Expired(now.Add(100*365*24*time.Hour), 0) {
		t.Error("a ban without expires_at expired")
	}
}

func TestKeyIsDeterministicAndDistinguishesMatchers(t *testing.T) {
	same := [][2]string{
		{`{"sub":"alice"}`, `{"sub":"alice","issued_before":"2026-11-20T00:00:00Z","reason":"again"}`},
		{`{"claims":{"tenant":"acme","plan":"pro"}}`, `{"claims":{"plan":"pro","tenant":"acme"}}`},
		{`{"claims":{"level":3}}`, `{"claims":{"level":3.0}}`},
		{`{"jti":"a"}`, `{"jti":"a","expires_at":1900000000}`},
	}
	for _, pair := range same {
		a, b := prepared(t, pair[0]), prepared(t, pair[1])
		if a.Key != b.Key {
			t.Errorf("keys differ for %s and %s", pair[0], pair[1])
		}
	}
	distinct := []string{
		`{"jti":"a"}`, `{"jti":"b"}`, `{"sub":"a"}`, `{"kid":"a"}`, `{"sub":"a","ban":true}`,
		`{"sub":"a","iss":"x"}`, `{"iss":"x","claims":{"a":"b"}}`, `{"claims":{"a":"b"}}`,
		`{"claims":{"a":true}}`, `{"claims":{"a":"true"}}`, `{"claims":{"a":1}}`, `{"claims":{"a":"1"}}`,
		`{"jti":"ab","sub":"c"}`, `{"jti":"a","sub":"bc"}`,
	}
	seen := map[string]string{}
	for _, body := range distinct {
		k := prepared(t, body).Key
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s share key %s", body, other, k)
		}
		seen[k] = body
	}
}

// TestTokenKey: a revocation posted with its token gets a key of its own:
// never an operator's key for the same matchers, and another key whenever
// issued_before or expires_at differ, so that it replaces only itself.
func TestTokenKey(t *testing.T) {
	tests := []struct {
		name     string
		a, b     string
		sameKeys bool // a.TokenKey() == b.TokenKey()
	}{
		{"identical", `{"sub":"a","issued_before":1800000000,"expires_at":1800003600}`, `{"sub":"a","issued_before":1800000000,"expires_at":1800003600,"reason":"x"}`, true},
		{"another cut", `{"sub":"a","issued_before":1800000000,"expires_at":1800003600}`, `{"sub":"a","issued_before":1800000001,"expires_at":1800003600}`, false},
		{"another expiry", `{"jti":"a","expires_at":1800003600}`, `{"jti":"a","expires_at":1800003601}`, false},
		{"another matcher", `{"jti":"a","expires_at":1800003600}`, `{"jti":"b","expires_at":1800003600}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := prepared(t, tc.a), prepared(t, tc.b)
			ka, kb := a.TokenKey(), b.TokenKey()
			if !ValidKey(ka) || (ka == kb) != tc.sameKeys {
				t.Errorf("token keys %s and %s: same %v, want %v", ka, kb, ka == kb, tc.sameKeys)
			}
			if ka == a.ComputeKey() || ka == b.ComputeKey() {
				t.Errorf("token key %s equals an operator's key", ka)
			}
		})
	}
}

func TestRevocationJSONRoundTrip(t *testing.T) {
	r := prepared(t, `{"sub":"alice","iss":"https://idp","claims":{"tenant":"acme","n":2,"b":false},"reason":"laptop stolen"}`)
	r.Seq, r.ID, r.Actor = 7, "1-7", "ops"
	data, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(data), "\r\n") {
		t.Fatalf("JSON spans lines: %s", data)
	}
	var back Revocation
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Key != r.Key || back.Seq != 7 || back.ID != "1-7" || back.Actor != "ops" ||
		!back.IssuedBefore.Equal(r.IssuedBefore.Time) || !back.ExpiresAt.Equal(r.ExpiresAt.Time) ||
		back.ComputeKey() != r.Key {
		t.Fatalf("round trip changed the revocation:\n%+v\n%+v", r, back)
	}
	for _, absent := range []string{"ban", "jti", "kid"} {
		if strings.Contains(string(data), `"`+absent+`"`) {
			t.Errorf("unset field %q encoded: %s", absent, data)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		revs, batch, err := DecodeRequest([]byte(`{"jti":"a"}`), 10)
		if err != nil || batch || len(revs) != 1 || revs[0].JTI != "a" {
			t.Fatalf("got %v %v %v", revs, batch, err)
		}
	})
	t.Run("batch", func(t *testing.T) {
		revs, batch, err := DecodeRequest([]byte(`{"revocations":[{"jti":"a"},{"sub":"b"}]}`), 10)
		if err != nil || !batch || len(revs) != 2 || revs[1].Sub != "b" {
			t.Fatalf("got %v %v %v", revs, batch, err)
		}
	})
	errs := []struct{ name, body, field string }{
		{"item error names index", `{"revocations":[{"jti":"a"},{"sub":1}]}`, "revocations[1].sub"},
		{"item without matcher", `{"revocations":[{"reason":"x"}]}`, "revocations[0].jti"},
		{"empty batch", `{"revocations":[]}`, "revocations"},
		{"batch with extra field", `{"revocations":[{"jti":"a"}],"jti":"b"}`, "revocations"},
		{"batch not array", `{"revocations":{"jti":"a"}}`, "revocations"},
		{"over the limit", `{"revocations":[{"jti":"a"},{"jti":"b"},{"jti":"c"}]}`, "revocations"},
		{"not an object", `"hello"`, ""},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeRequest([]byte(tc.body), 2)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want field %q", err, tc.field)
			}
		})
	}
}

func FuzzDecodeRevocation(f *testing.F) {
	for _, seed := range []string{
		`{"jti":"a"}`, `{"sub":"alice","ban":true}`, `{"iss":"i","claims":{"t":"a","n":1.5,"b":true}}`,
		`{"kid":"k","issued_before":"2026-01-01T00:00:00Z","expires_at":1900000000.5}`,
		`{"jti":"a","extra":1}`, `{"revocations":[{"jti":"a"}]}`, `{"claims":{"\u0000":"\n"}}`,
		`{"jti":"a","expires_at":"2026-01-01T00:00:00.123456789+02:00"}`, `null`, `{"jti":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRevocation(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Problem == "" {
				t.Fatalf("error %v (%T) is not a FieldError", err, err)
			}
			return
		}
		// the server's policy bounds expires_at; without a bound every
		// accepted value must still be storable
		for _, policy := range []Policy{{MaxExpiry: 366 * 24 * time.Hour}, {}} {
			checkStored(t, data, r, policy)
		}
	})
}

// checkStored prepares a decoded revocation as the server does and checks
// what it would store: one SSE data line that decodes, as every agent
// decodes it, to exactly what was stored (a value that does not is an event
// every agent skips).
func checkStored(t *testing.T, data []byte, r Revocation, policy Policy) {
	t.Helper()
	r.Claims = maps.Clone(r.Claims)
	if err := policy.Prepare(&r, now); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("Prepare error %v is not a FieldError", err)
		}
		return
	}
	if !ValidKey(r.Key) || r.Key != r.ComputeKey() {
		t.Fatalf("bad key %q", r.Key)
	}
	out, err := MarshalStored(&r)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if strings.ContainsAny(string(out), "\r\n\x00") {
		t.Fatalf("encoded revocation spans lines: %q", out)
	}
	var back Revocation
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("an accepted revocation does not decode: %s from %q: %v", out, data, err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("decodes to something else than was stored:\nstored  %+v\ndecoded %+v\njson %s", r, back, out)
	}
	if again, _ := MarshalStored(&back); string(again) != string(out) {
		t.Fatalf("encoding changed through decoding:\n%s\n%s", out, again)
	}
	if back.ComputeKey() != r.Key {
		t.Fatalf("key changed through JSON: %s", out)
	}
}

// TestAppendWithIDEqualsEncoding: splicing id and seq into the stored JSON
// gives exactly what encoding the revocation with them gives.
func TestAppendWithIDEqualsEncoding(t *testing.T) {
	for _, body := range []string{
		`{"jti":"a"}`, `{"sub":"alice","reason":"x\"y"}`, `{"sub":"m","ban":true}`,
		`{"iss":"i","claims":{"t":"acme","n":2}}`, `{"kid":"k","expires_at":1900000000}`,
	} {
		r := prepared(t, body)
		r.Actor = "ops"
		stored, err := MarshalStored(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := AppendWithID(nil, stored, "17-42", 42)
		if !ok {
			t.Fatalf("%s: stored form %s not recognised", body, stored)
		}
		r.ID, r.Seq = "17-42", 42
		want, _ := json.Marshal(&r)
		if string(got) != string(want) {
			t.Fatalf("spliced %s\nencoded %s", got, want)
		}
	}
	for _, bad := range []string{``, `{}`, `{"jti":"a"}`, `{"key":"short"}`, `{"key":"` + strings.Repeat("a", 32) + `"x`} {
		if _, ok := AppendWithID(nil, []byte(bad), "1-1", 1); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
