package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestKeyFileRoundTrip(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	if !strings.HasPrefix(k1, KeyPrefix) || len(k1) != len(KeyPrefix)+43 || k1 == k2 {
		t.Fatalf("keys %q %q", k1, k2)
	}
	file := "# operators\n\n" + KeyLine("ops", RoleRevoker, k1) + "\n  " + KeyLine("dash", RoleReader, k2) + "  \n"
	ks, err := ParseKeys(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(file, k1) || strings.Contains(file, k2) {
		t.Fatal("the key file holds a key")
	}
	for key, want := range map[string]Principal{
		k1: {Name: "ops", Role: RoleRevoker, Kind: "api-key"},
		k2: {Name: "dash", Role: RoleReader, Kind: "api-key"},
	} {
		if got, ok := ks.Lookup(key); !ok || got != want {
			t.Errorf("Lookup = %+v %v, want %+v", got, ok, want)
		}
	}
	if _, ok := ks.Lookup(k1 + "x"); ok {
		t.Error("a wrong key was found")
	}
}

func TestParseKeysErrors(t *testing.T) {
	h := HashKey("k")
	for name, file := range map[string]string{
		"two fields":     "ops revoker\n",
		"bad role":       "ops admin " + h + "\n",
		"raw key":        "ops revoker rvc_abc\n",
		"short hash":     "ops revoker abcd\n",
		"duplicate name": "a reader " + h + "\na revoker " + h + "\n",
		"bad name":       "a/b reader " + h + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKeys(strings.NewReader(file))
			if err == nil || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("err = %v, want one naming the line", err)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	if !RoleRevoker.Allows(RoleReader) || RoleReader.Allows(RoleRevoker) || RoleNone.Allows(RoleReader) {
		t.Fatal("role order")
	}
	for _, s := range []string{"reader", "revoker"} {
		r, err := ParseRole(s)
		if err != nil || r.String() != s {
			t.Fatalf("ParseRole(%q) = %v %v", s, r, err)
		}
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  a.b.c", "a.b.c", true},
		{"Bearer abc==", "abc==", true},
		{"Bearer a=b", "", false},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"Basic abc", "", false},
		{"Bearer abc def", "", false},
		{"Bearer ab\tc", "", false},
		{"Bearer ===", "", false},
		{"", "", false},
		{"Bearer " + strings.Repeat("a", maxCredential), "", false},
	}
	for _, tc := range tests {
		got, ok := ParseBearer(tc.header)
		if got != tc.token || ok != tc.ok {
			t.Errorf("ParseBearer(%q) = %q %v, want %q %v", tc.header, got, ok, tc.token, tc.ok)
		}
	}
}

type fakeJWT struct{}

func (fakeJWT) VerifyOperator(raw string) (Principal, error) {
	if raw == "a.b.c" {
		return Principal{Name: "carol", Role: RoleReader, Kind: "jwt"}, nil
	}
	return Principal{}, errors.New("bad signature")
}

func TestAuthenticate(t *testing.T) {
	key, _ := GenerateKey()
	ks, _ := ParseKeys(strings.NewReader(KeyLine("ops", RoleRevoker, key)))
	a := New(ks, fakeJWT{})
	req := func(h string) *http.Request {
		r, _ := http.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
	if p, err := a.Authenticate(req("Bearer " + key)); err != nil || p.Name != "ops" {
		t.Fatalf("api key: %+v %v", p, err)
	}
	if p, err := a.Authenticate(req("Bearer a.b.c")); err != nil || p.Name != "carol" {
		t.Fatalf("jwt: %+v %v", p, err)
	}
	for h, want := range map[string]error{
		"":               ErrNoCredentials,
		"Basic x":        ErrInvalidCredentials,
		"Bearer x.y.z":   ErrInvalidCredentials,
		"Bearer unknown": ErrInvalidCredentials,
	} {
		if _, err := a.Authenticate(req(h)); !errors.Is(err, want) {
			t.Errorf("%q: err = %v, want %v", h, err, want)
		}
	}
	if p, err := New(nil, nil).Authenticate(req("")); err != nil || p != Anonymous {
		t.Fatalf("without credentials: %+v %v", p, err)
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer ", "Basic x", "Bearer a==", "Bearer =", "BeArEr \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := ParseBearer(header)
		if !ok {
			if token != "" {
				t.Fatal("a token with ok=false")
			}
			return
		}
		if token == "" || strings.ContainsAny(token, " \t\r\n\x00") || !strings.HasSuffix(strings.ToLower(header), strings.ToLower(token)) {
			t.Fatalf("ParseBearer(%q) = %q", header, token)
		}
		// what was accepted parses again the same way
		if again, ok := ParseBearer("Bearer " + token); !ok || again != token {
			t.Fatalf("token %q does not parse again", token)
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	f.Add("ops revoker " + HashKey("k") + "\n# c\n")
	f.Add("a reader zz\n")
	f.Fuzz(func(t *testing.T, file string) {
		ks, err := ParseKeys(strings.NewReader(file))
		if err != nil {
			return
		}
		for _, k := range ks.keys {
			if !ValidName(k.name) || (k.role != RoleReader && k.role != RoleRevoker) {
				t.Fatalf("accepted %+v", k)
			}
		}
	})
}

// TestWatchKeyFile: SIGHUP (a value on hup) reloads the key file even when
// unchanged on disk; an emptied file accepts no key and never turns
// authentication off; a broken file keeps the keys in force.
func TestWatchKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/keys"
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(KeyLine("one", RoleReader, k1) + "\n")
	ks, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a := New(ks, nil)
	hup := make(chan os.Signal) // unbuffered: a send returns once the watcher took it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.WatchKeyFile(ctx, path, time.Hour, hup, slog.New(slog.DiscardHandler)) // only SIGHUP reloads here
	}()
	accepted := func(key string) bool { _, err := a.AuthenticateToken(key); return err == nil }
	reload := func() {
		t.Helper()
		hup <- syscall.SIGHUP
		hup <- syscall.SIGHUP // taken only once the first reload is done
	}

	write("garbage\n")
	reload()
	if !accepted(k1) {
		t.Fatal("a broken file dropped the keys in force")
	}
	write(KeyLine("two", RoleRevoker, k2) + "\n")
	reload()
	if accepted(k1) || !accepted(k2) {
		t.Fatalf("after the reload: one %v, two %v", accepted(k1), accepted(k2))
	}
	write("# nobody\n")
	reload()
	if accepted(k2) || !a.Enabled() {
		t.Fatalf("emptied file: two accepted %v, enabled %v", accepted(k2), a.Enabled())
	}
	cancel()
	<-done
}
