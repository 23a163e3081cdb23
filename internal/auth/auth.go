// Package auth decides who is calling the broadcaster and what they may do.
// Two roles: a reader lists revocations and follows the stream, a revoker
// also posts and lifts them. Two kinds of credentials, usable together, both
// sent as "Authorization: Bearer …": API keys, stored in a file as their
// SHA-256 only, and operator JWTs, verified by a JWTVerifier (keys,
// algorithm allow-list, issuer, audience) with the role in a claim.
//
// internal/broadcaster uses it for every request; the broadcaster's keygen
// subcommand uses GenerateKey and KeyLine. An *Authenticator and a *KeyStore
// are safe for concurrent use.
package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/revocast/revocast/pkg/events"
)

// Role is what a credential may do.
type Role int

// Roles, in increasing power: each allows what the ones before it allow.
const (
	RoleNone Role = iota
	RoleReader
	RoleRevoker
)

// String is the role's name as written in key files and claims.
func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RoleRevoker:
		return "revoker"
	}
	return "none"
}

// Allows reports whether a credential with role r may do what needs.
func (r Role) Allows(need Role) bool { return r >= need }

// ParseRole reads "reader" or "revoker".
func ParseRole(s string) (Role, error) {
	switch s {
	case "reader":
		return RoleReader, nil
	case "revoker":
		return RoleRevoker, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q: want reader or revoker", s)
}

// Principal is an authenticated caller.
type Principal struct {
	// Name is recorded as the actor of what it posts: the API key's name,
	// or the operator JWT's sub.
	Name string
	Role Role
	// Kind is "api-key", "jwt" or "anonymous".
	Kind string
	// Token holds the facts of an operator JWT that revocations match
	// against, and Expires its exp: a revoked or expired operator JWT loses
	// its rights, on its next request and on an open stream. Nil and zero
	// for API keys.
	Token   *events.Token
	Expires time.Time
}

// Errors of Authenticate.
var (
	ErrNoCredentials      = errors.New("no credentials")
	ErrInvalidCredentials = errors.New("invalid credentials")
)

// KeyPrefix starts every generated API key, so that a key that leaks into a
// log or a repository is recognisable (and greppable).
const KeyPrefix = "rvc_"

// GenerateKey returns a new random API key: 256 bits from crypto/rand.
func GenerateKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashKey is what a key file stores for a key: its SHA-256 in hex.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyLine is the key file line for a key: "<name> <role> <sha256>".
func KeyLine(name string, role Role, key string) string {
	return name + " " + role.String() + " " + HashKey(key)
}

// ValidName reports whether s can name a key: 1-64 letters, digits, '-',
// '_', '.', '@'.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !nameRune(c) {
			return false
		}
	}
	return true
}

// nameRune reports whether c may appear in a key name: an ASCII letter or
// digit, '-', '_', '.' or '@'.
func nameRune(c rune) bool {
	return c <= unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("-_.@", c))
}

type storedKey struct {
	name string
	role Role
	hash [sha256.Size]byte
}

// KeyStore holds the API keys of a key file.
type KeyStore struct {
	keys []storedKey
}

// LoadKeyFile reads a key file: one key per line, "<name> <role> <sha256
// hex>", blank lines and lines starting with # ignored.
func LoadKeyFile(path string) (*KeyStore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	defer f.Close()
	ks, err := ParseKeys(f)
	if err != nil {
		return nil, fmt.Errorf("api keys %s: %w", path, err)
	}
	return ks, nil
}

// ParseKeys reads key file lines from r.
func ParseKeys(r io.Reader) (*KeyStore, error) {
	ks := &KeyStore{}
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"<name> <role> <sha256>\", got %d fields", n, len(f))
		}
		if !ValidName(f[0]) {
			return nil, fmt.Errorf("line %d: invalid name %q", n, f[0])
		}
		if names[f[0]] {
			return nil, fmt.Errorf("line %d: duplicate name %q", n, f[0])
		}
		role, err := ParseRole(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		h, err := hex.DecodeString(f[2])
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("line %d: the third field must be the key's SHA-256 in hex (64 digits), never the key itself", n)
		}
		k := storedKey{name: f[0], role: role}
		copy(k.hash[:], h)
		ks.keys = append(ks.keys, k)
		names[f[0]] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ks, nil
}

// Len is the number of keys.
func (ks *KeyStore) Len() int { return len(ks.keys) }

// Lookup finds the key. It compares the key's hash with every stored hash
// in constant time, so timing tells nothing about which keys exist.
func (ks *KeyStore) Lookup(key string) (Principal, bool) {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range ks.keys {
		if subtle.ConstantTimeCompare(sum[:], ks.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	k := ks.keys[found]
	return Principal{Name: k.name, Role: k.role, Kind: "api-key"}, true
}

// JWTVerifier verifies an operator JWT and says who it is and what it may do.
type JWTVerifier interface {
	VerifyOperator(raw string) (Principal, error)
}

// Authenticator checks the credentials of a request. Its API keys can be
// replaced while it serves (SetKeys, WatchKeyFile), so that a key is
// withdrawn without a restart.
type Authenticator struct {
	keys    atomic.Pointer[KeyStore] // nil: no API keys
	hasKeys bool                     // configured with API keys: stays enabled even if a reload leaves none
	jwt     JWTVerifier
}

// New returns an Authenticator; either argument may be nil. With both nil
// there are no credentials: Enabled is false and every caller is anonymous.
func New(keys *KeyStore, jwt JWTVerifier) *Authenticator {
	if keys != nil && keys.Len() == 0 {
		keys = nil
	}
	a := &Authenticator{jwt: jwt, hasKeys: keys != nil}
	a.keys.Store(keys)
	return a
}

// Enabled reports whether any credential is configured. It does not change
// when the API keys are replaced: a key file emptied by a reload leaves an
// authenticator that accepts no API key, never one that accepts everyone.
func (a *Authenticator) Enabled() bool { return a.hasKeys || a.jwt != nil }

// VerifiesJWTs reports whether operator JWTs are accepted.
func (a *Authenticator) VerifiesJWTs() bool { return a.jwt != nil }

// SetKeys replaces the API keys (ks nil or empty: none is accepted). It has
// no effect on an Authenticator created without API keys.
func (a *Authenticator) SetKeys(ks *KeyStore) {
	if a.hasKeys {
		a.keys.Store(ks)
	}
}

// WatchKeyFile reloads the API keys from path whenever hup delivers a value
// (SIGHUP) and whenever the file's content changes (checked every
// interval), until ctx ends. A file that cannot be read or parsed keeps the
// keys in force and is logged; a valid one replaces them, so a key deleted
// from the file stops working within one interval.
func (a *Authenticator) WatchKeyFile(ctx context.Context, path string, interval time.Duration, hup <-chan os.Signal, log *slog.Logger) {
	var last [sha256.Size]byte
	if data, err := os.ReadFile(path); err == nil {
		last = sha256.Sum256(data)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-hup:
			forced = true
		}
		data, err := os.ReadFile(path)
		if err != nil {
			log.Error("cannot reload the API key file; the keys in force stay", "path", path, "err", err)
			continue
		}
		sum := sha256.Sum256(data)
		if sum == last && !forced {
			continue
		}
		ks, err := ParseKeys(bytes.NewReader(data))
		if err != nil {
			log.Error("cannot reload the API key file; the keys in force stay", "path", path, "err", err)
			continue
		}
		last = sum
		a.SetKeys(ks)
		log.Info("API keys reloaded", "path", path, "keys", ks.Len(), "audit", true)
	}
}

// Anonymous is who calls a broadcaster without credentials configured.
var Anonymous = Principal{Name: "anonymous", Role: RoleRevoker, Kind: "anonymous"}

// Authenticate returns the caller of r: Anonymous when no credentials are
// configured, else the principal of its bearer credential, or
// ErrNoCredentials / ErrInvalidCredentials (wrapped with the reason, for
// the log only: never show it to the client).
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if !a.Enabled() {
		return Anonymous, nil
	}
	token, ok := ParseBearer(r.Header.Get("Authorization"))
	if !ok {
		if r.Header.Get("Authorization") == "" {
			return Principal{}, ErrNoCredentials
		}
		return Principal{}, fmt.Errorf("%w: malformed Authorization header", ErrInvalidCredentials)
	}
	return a.AuthenticateToken(token)
}

// AuthenticateToken checks one bearer credential.
func (a *Authenticator) AuthenticateToken(token string) (Principal, error) {
	if ks := a.keys.Load(); ks != nil {
		if p, ok := ks.Lookup(token); ok {
			return p, nil
		}
	}
	if a.jwt != nil && looksLikeJWT(token) {
		p, err := a.jwt.VerifyOperator(token)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err) //nolint:errorlint // the sentinel is the contract; the cause is detail
		}
		return p, nil
	}
	return Principal{}, fmt.Errorf("%w: unknown API key", ErrInvalidCredentials)
}

func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// maxCredential bounds what is read from an Authorization header.
const maxCredential = 16 << 10

// ParseBearer extracts the credential of an "Authorization: Bearer <token>"
// header (the scheme is case-insensitive, RFC 6750 §2.1). The token must be
// b64token characters only.
func ParseBearer(header string) (string, bool) {
	if len(header) > maxCredential {
		return "", false
	}
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	token := strings.TrimLeft(header[len(scheme):], " ")
	if token == "" {
		return "", false
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	body := strings.TrimRight(token, "=")
	if body == "" {
		return "", false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !b64tokenByte(c) {
			return "", false
		}
	}
	return token, true
}

// b64tokenByte reports whether c is an ALPHA, DIGIT, "-", ".", "_", "~",
// "+" or "/", the characters of an RFC 6750 b64token before its padding.
func b64tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0
}
