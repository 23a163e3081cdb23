package events

import (
	"errors"
	"testing"
)

func TestParseEventID(t *testing.T) {
	good := map[string]EventID{
		"1-1":              {1, 1},
		"1763900000000-42": {1763900000000, 42},
		"0-0":              {0, 0},
		"18446744073709551615-18446744073709551615": {^uint64(0), ^uint64(0)},
		"007-08": {7, 8},
	}
	for s, want := range good {
		got, err := ParseEventID(s)
		if err != nil || got != want {
			t.Errorf("ParseEventID(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-", "1-", "-1", "1", "a-1", "1-a", "1-2-3", "+1-2", "1-+2", " 1-2", "1-2 ",
		"18446744073709551616-1", "1-18446744073709551616", "1_000-2", "now", "１-2"} {
		if _, err := ParseEventID(s); !errors.Is(err, ErrMalformedID) {
			t.Errorf("ParseEventID(%q) err = %v, want ErrMalformedID", s, err)
		}
	}
}

func TestEventIDString(t *testing.T) {
	if s := (EventID{Epoch: 1763900000000, Seq: 42}).String(); s != "1763900000000-42" {
		t.Fatalf("String = %q", s)
	}
}

func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{"1-1", "0-0", "", "-", "12-", "1-2-3", "18446744073709551615-1", "99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseEventID(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedID) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		back, err := ParseEventID(id.String())
		if err != nil || back != id {
			t.Fatalf("%q parsed to %v, which formats to %q and parses to %v, %v", s, id, id.String(), back, err)
		}
	})
}
