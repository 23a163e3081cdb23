package envflag

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	env := map[string]string{
		"REVOCAST_ADDR":      "0.0.0.0:1",
		"REVOCAST_HEARTBEAT": "5s",
		"REVOCAST_ROUTES":    "a, b",
		"REVOCAST_DEBUG":     "true",
	}
	tests := []struct {
		name    string
		args    []string
		addr    string
		beat    time.Duration
		routes  []string
		debug   bool
		wantErr bool
	}{
		{"environment over default", nil, "0.0.0.0:1", 5 * time.Second, []string{"a", "b"}, true, false},
		{"flag over environment", []string{"--addr", "x:2", "--heartbeat=1s", "--routes", "c", "--routes", "d,e", "--debug=false"},
			"x:2", time.Second, []string{"c", "d", "e"}, false, false},
		{"bad flag", []string{"--heartbeat", "soon"}, "", 0, nil, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New("x", func(k string) string { return env[k] }, io.Discard)
			var addr string
			var beat time.Duration
			var routes []string
			var debug bool
			s.String(&addr, "addr", "127.0.0.1:8080", "listen address")
			s.Duration(&beat, "heartbeat", 15*time.Second, "heartbeat")
			s.List(&routes, "routes", nil, "routes")
			s.Bool(&debug, "debug", false, "debug")
			err := s.Parse(tc.args)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if addr != tc.addr || beat != tc.beat || !slices.Equal(routes, tc.routes) || debug != tc.debug {
				t.Fatalf("got %q %v %v %v", addr, beat, routes, debug)
			}
		})
	}
}

func TestDefaultsWithoutEnvironment(t *testing.T) {
	s := New("x", func(string) string { return "" }, io.Discard)
	var addr string
	var n int
	s.String(&addr, "addr", "127.0.0.1:8080", "")
	s.Int(&n, "max-batch", 10000, "")
	if err := s.Parse(nil); err != nil || addr != "127.0.0.1:8080" || n != 10000 {
		t.Fatalf("got %q %d %v", addr, n, err)
	}
}

func TestInvalidEnvironmentIsAnError(t *testing.T) {
	s := New("x", func(k string) string {
		if k == "REVOCAST_MAX_BATCH" {
			return "many"
		}
		return ""
	}, io.Discard)
	var n int
	s.Int(&n, "max-batch", 1, "")
	if err := s.Parse(nil); err == nil {
		t.Fatal("an invalid REVOCAST_MAX_BATCH was accepted")
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("max-token-lifetime"); got != "REVOCAST_MAX_TOKEN_LIFETIME" {
		t.Fatal(got)
	}
}

func TestFlags(t *testing.T) {
	s := New("x", func(string) string { return "" }, io.Discard)
	var addr string
	var beat time.Duration
	s.String(&addr, "addr", "127.0.0.1:8080", "listen address")
	s.Duration(&beat, "heartbeat", 15*time.Second, "heartbeat")
	got := s.Flags()
	want := []FlagInfo{
		{"addr", "REVOCAST_ADDR", "127.0.0.1:8080", "listen address", "string"},
		{"heartbeat", "REVOCAST_HEARTBEAT", "15s", "heartbeat", "duration"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v", got)
	}
}

// TestFlagsJSON: --flags-json is seen whatever the environment holds, has no
// variable of its own and is not listed; the listing round-trips.
func TestFlagsJSON(t *testing.T) {
	s := New("x", func(k string) string {
		switch k {
		case "REVOCAST_MAX_BATCH":
			return "many"
		case "REVOCAST_FLAGS_JSON":
			return "false"
		}
		return ""
	}, io.Discard)
	var n int
	s.Int(&n, "max-batch", 1, "most per batch")
	var list bool
	s.AddFlagsJSON(&list)
	if err := s.Parse([]string{"--flags-json"}); err == nil {
		t.Fatal("the invalid REVOCAST_MAX_BATCH was not reported")
	}
	if !list {
		t.Fatal("--flags-json not set after parsing it")
	}
	if !slices.Equal(s.Names(), []string{"max-batch"}) {
		t.Fatalf("Names() = %v", s.Names())
	}
	var buf bytes.Buffer
	if err := s.WriteFlagsJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got []FlagInfo
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []FlagInfo{{"max-batch", "REVOCAST_MAX_BATCH", "1", "most per batch", "int"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v", got)
	}
}
