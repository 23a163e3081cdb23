// This file is in package broadcaster, not broadcaster_test: the fuzz
// targets call the server's handler in-process. Over real HTTP the client
// would refuse most arbitrary header values (control characters, bad
// UTF-8) before they reach the server, and the network would slow the
// fuzzing down; the exported API offers only the listening server.

package broadcaster

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events/natslog"
)

var (
	fuzzOnce   sync.Once
	fuzzServer *Server
	fuzzKey    string
	fuzzDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzServer != nil {
		_ = fuzzServer.Shutdown(context.Background())
		os.RemoveAll(fuzzDir)
	}
	os.Exit(code)
}

// fuzzTarget is one broadcaster shared by the fuzz inputs, with a revoker
// key configured, whose handler the inputs are sent to in-process.
func fuzzTarget(f *testing.F) (*Server, string) {
	fuzzOnce.Do(func() {
		fuzzKey, _ = auth.GenerateKey()
		ks, _ := auth.ParseKeys(strings.NewReader(auth.KeyLine("fuzz", auth.RoleRevoker, fuzzKey)))
		dir, err := os.MkdirTemp("", "revocast-fuzz-")
		if err != nil {
			panic(err)
		}
		fuzzDir = dir
		s, err := New(Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: dir}, Auth: auth.New(ks, nil), RateLimit: 0})
		if err != nil {
			panic(err)
		}
		if err := s.Start(context.Background()); err != nil {
			panic(err)
		}
		<-s.Ready()
		fuzzServer = s
	})
	return fuzzServer, fuzzKey
}

// FuzzRevokeForm sends arbitrary bodies, content types and Authorization
// headers to POST /v1/revoke: every answer is one of the documented ones,
// never a 5xx or a panic.
func FuzzRevokeForm(f *testing.F) {
	s, key := fuzzTarget(f)
	f.Add("token=abc", "application/x-www-form-urlencoded", "Bearer "+key)
	f.Add("token="+unsignedJWT(`{"jti":"f","exp":9999999999}`), "application/x-www-form-urlencoded", "Bearer "+key)
	f.Add("token=%zz&token_type_hint=refresh_token", "application/x-www-form-urlencoded", "bearer x.y.z")
	f.Add("", "multipart/form-data; boundary=x", "")
	f.Add(`{"token":"abc"}`, "application/json", "Basic abc")
	f.Add("token="+strings.Repeat("a", 70000), "application/x-www-form-urlencoded", "Bearer "+key)
	handler := s.routes()
	f.Fuzz(func(t *testing.T, body, contentType, authorization string) {
		req := httptest.NewRequest("POST", "/v1/revoke", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		ctx, cancel := context.WithTimeout(req.Context(), testutil.HangLimit)
		defer cancel()
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req.WithContext(ctx))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("POST /v1/revoke %q (%q, %q) answered %d: %s", body, contentType, authorization, rec.Code, rec.Body)
		}
	})
}

// FuzzAuthorizationHeader sends arbitrary Authorization headers to an
// endpoint that needs a credential: only the real key gets through.
func FuzzAuthorizationHeader(f *testing.F) {
	s, key := fuzzTarget(f)
	handler := s.routes()
	for _, h := range []string{"Bearer " + key, "bearer " + key, "Bearer " + key + "x", "Basic " + key, "Bearer", "", "Bearer a.b.c"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, authorization string) {
		req := httptest.NewRequest("GET", "/v1/revocations?limit=1", nil)
		req.Header.Set("Authorization", authorization)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		token, ok := auth.ParseBearer(authorization)
		want := http.StatusUnauthorized
		if ok && token == key {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Fatalf("Authorization %q: %d, want %d", authorization, rec.Code, want)
		}
	})
}

// unsignedJWT builds a token with alg none: fine for decode-only paths.
func unsignedJWT(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(payload)) + "."
}
