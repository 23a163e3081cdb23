package jwtverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/events"
)

// Claims are the verified claims of a token. Callers may share one *Claims
// between every request that presents the same token (pkg/agent's Check
// does): treat it, Raw and Audience included, as read-only.
type Claims struct {
	Subject  string   // sub
	Issuer   string   // iss
	ID       string   // jti
	Audience []string // aud
	// ExpiresAt is exp; NotBefore and IssuedAt are nbf and iat, zero when
	// the token has none.
	ExpiresAt time.Time
	NotBefore time.Time
	IssuedAt  time.Time
	// KeyID and Algorithm come from the JOSE header.
	KeyID     string
	Algorithm string
	// SigningKeyID and SigningKeyThumbprint name the key whose signature
	// verified the token: its kid in the JWKS ("" for a PEM key or the HMAC
	// secret) and its RFC 7638 thumbprint (see Thumbprint). A kid
	// revocation matches either, or KeyID.
	SigningKeyID         string
	SigningKeyThumbprint string
	// Raw holds every claim of the payload as decoded from JSON (numbers
	// are float64).
	Raw map[string]any

	token events.Token
}

// Token returns the facts about the token that revocations match against.
func (c *Claims) Token() events.Token { return c.token }

// Facts returns the same facts as Token without copying them, for hot
// paths such as a denylist lookup on every request. It points into c:
// treat it as read-only.
func (c *Claims) Facts() *events.Token { return &c.token }

// Algorithms by family.
var (
	hmacAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs    = []string{"ES256", "ES384", "ES512"}
	edAlgs    = []string{"EdDSA"}
	knownAlgs = slices.Concat(hmacAlgs, rsaAlgs, ecAlgs, edAlgs)
)

// AlgorithmsFor returns the algorithms that the given keys can verify: RS*
// and PS* for RSA keys, ES256/ES384/ES512 for ECDSA keys on P-256, P-384 and
// P-521, EdDSA for Ed25519 keys, all asymmetric ones when jwks is true, and
// HS256/HS384/HS512 only when hmac is true. cmd/agent uses it as the default
// of --algs, and KeySource when it names no algorithms.
func AlgorithmsFor(keys []crypto.PublicKey, hmac, jwks bool) []string {
	var out []string
	add := func(algs ...string) {
		for _, a := range algs {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if hmac {
		add(hmacAlgs...)
	}
	if jwks {
		add(rsaAlgs...)
		add(ecAlgs...)
		add(edAlgs...)
	}
	for _, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			add(rsaAlgs...)
		case *ecdsa.PublicKey:
			if a := ecAlg(k.Curve); a != "" {
				add(a)
			}
		case ed25519.PublicKey:
			add(edAlgs...)
		}
	}
	// a stable order: the order of knownAlgs
	slices.SortFunc(out, func(a, b string) int { return slices.Index(knownAlgs, a) - slices.Index(knownAlgs, b) })
	return out
}

// verifyKey is one key that may verify tokens, with the names a kid
// revocation can give it.
type verifyKey struct {
	key        any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
	kid        string // its kid in the JWKS; "" for PEM keys and the HMAC secret
	thumbprint string // RFC 7638
	alg        string // the JWK's alg, the only algorithm it verifies; "" for any of its kind
	// memo is shared by the tokens this key verifies, so that the denylist
	// hashes the key's names once rather than on every check.
	memo events.KeyMemo
}

func newVerifyKey(key any, kid, alg string) (*verifyKey, error) {
	tp, err := Thumbprint(key)
	if err != nil {
		return nil, err
	}
	return &verifyKey{key: key, kid: kid, thumbprint: tp, alg: alg}, nil
}

// verifies reports whether the key may verify a token signed with alg.
func (k *verifyKey) verifies(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return slices.Contains(rsaAlgs, alg)
	case *ecdsa.PublicKey:
		return ecAlg(key.Curve) == alg
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return slices.Contains(hmacAlgs, alg)
	}
	return false
}

// Verifier checks JWTs: an explicit algorithm allow-list (never "none"),
// keys from PEM data, an HMAC secret or a JWKS (refreshed in the
// background, never on the verification path), iss, aud, exp required,
// nbf and iat with a leeway, and no ambiguity (duplicate member names,
// crit, names a revocation cannot carry). It knows which key verified each
// token. It is immutable after New but for the JWKS snapshot, and safe for
// concurrent use.
type Verifier struct {
	parser     *jwt.Parser
	issuers    []string
	requireIAT bool
	algs       []string     // the allow-list
	static     []*verifyKey // PEM keys and the HMAC secret, in the order given
	jwks       *jwksSource  // nil without WithJWKS
}

// New returns a verifier, or an error matching ErrInvalidOption for a
// configuration that could verify nothing or could be abused: no
// algorithms, "none", HS* without a secret, an algorithm without a key of
// its kind, no key source, a weak key, a short HMAC secret, or any option
// given a value it does not accept. New does no I/O (with a JWKS, call
// Run) and logs each static key with its thumbprint.
func New(opts ...Option) (*Verifier, error) {
	c := defaultConfig()
	if err := applyOptions(&c, opts); err != nil {
		return nil, err
	}
	var errs []error
	if len(c.algs) == 0 {
		errs = append(errs, ErrNoAlgorithms)
	}
	if len(c.keys) == 0 && len(c.hmacSecret) == 0 && c.jwksURL == "" {
		errs = append(errs, ErrNoKeySource)
	}
	v := &Verifier{issuers: slices.Clone(c.issuers), requireIAT: c.requireIAT}
	for _, key := range c.keys {
		k, err := newVerifyKey(key, "", "")
		if err != nil {
			errs = append(errs, optionErr("public key: %v", err))
			continue
		}
		v.static = append(v.static, k)
	}
	if len(c.hmacSecret) > 0 {
		k, _ := newVerifyKey(c.hmacSecret, "", "")
		v.static = append(v.static, k)
	}
	for _, a := range c.algs {
		switch {
		case strings.EqualFold(a, "none"):
			errs = append(errs, ErrAlgorithmNone)
			continue
		case !slices.Contains(knownAlgs, a):
			errs = append(errs, optionErr("unknown algorithm %q (want one of %s)", a, strings.Join(knownAlgs, ", ")))
			continue
		case slices.Contains(hmacAlgs, a) && len(c.hmacSecret) == 0:
			errs = append(errs, optionErr("algorithm %s needs an HMAC secret", a))
			continue
		}
		if slices.Contains(v.algs, a) {
			continue
		}
		v.algs = append(v.algs, a)
		if !slices.ContainsFunc(v.static, func(k *verifyKey) bool { return k.verifies(a) }) && c.jwksURL == "" {
			errs = append(errs, optionErr("algorithm %s: no key of its kind (and no JWKS)", a))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(c.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(c.now),
		jwt.WithStrictDecoding(),
	}
	if len(c.audiences) > 0 {
		popts = append(popts, jwt.WithAudience(c.audiences...))
	}
	v.parser = jwt.NewParser(popts...)
	if c.jwksURL != "" {
		v.jwks = newJWKSSource(&c)
	}
	v.logKeys(c.logger)
	return v, nil
}

// Run loads and refreshes the JWKS until ctx ends; without a JWKS it
// returns at once.
func (v *Verifier) Run(ctx context.Context) {
	if v.jwks != nil {
		v.jwks.run(ctx)
	}
}

// Refresh fetches the JWKS once now and publishes it if it changed;
// without a JWKS it does nothing. Run does this on its own; Refresh is for
// callers (and tests) that need the key set before going on.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v.jwks == nil {
		return nil
	}
	return v.jwks.fetch(ctx)
}

// HasJWKS reports whether the verifier was given a JWKS.
func (v *Verifier) HasJWKS() bool { return v.jwks != nil }

// KeySetLoaded reports whether the verifier can verify tokens with all its
// keys: always without a JWKS, and once the JWKS has been loaded with one.
func (v *Verifier) KeySetLoaded() bool { return v.jwks == nil || v.jwks.current.Load() != nil }

// JWKSStats counts JWKS fetches: those that succeeded, those of them that
// changed the key set, and those that failed. All zero without a JWKS.
func (v *Verifier) JWKSStats() (refreshes, changes, failures uint64) {
	if v.jwks == nil {
		return 0, 0, 0
	}
	return v.jwks.refreshes.Load(), v.jwks.changes.Load(), v.jwks.failures.Load()
}

// logKeys lists the static keys with their thumbprints, so that an operator
// knows what a kid revocation must name.
func (v *Verifier) logKeys(log *slog.Logger) {
	for _, k := range v.static {
		if _, secret := k.key.([]byte); secret {
			log.Info("verification key loaded", "type", "HMAC secret", "thumbprint", k.thumbprint)
			continue
		}
		log.Info("verification key loaded", "type", KeyType(k.key), "thumbprint", k.thumbprint)
	}
}

// Reasons a token is refused; Verify's errors wrap them (or golang-jwt's
// reasons: jwt.ErrTokenExpired, jwt.ErrTokenSignatureInvalid, …).
var (
	// ErrInvalid is matched (errors.Is) by every error of Verify.
	ErrInvalid = errors.New("jwtverify: invalid token")
	// ErrUnknownKID: the token's kid is not in the JWKS (a refresh has
	// been requested).
	ErrUnknownKID = errors.New("unknown key ID (kid); the key set is being refreshed")
	// ErrJWKSNotLoaded: the JWKS has not been fetched yet.
	ErrJWKSNotLoaded = errors.New("the JWKS has not been loaded yet")
	// ErrCrit: the header has crit; no extension is understood.
	ErrCrit = errors.New("crit header: no extension is understood")
	// ErrRepeatedMember: the header or payload repeats a member name.
	ErrRepeatedMember = errors.New("a member name is repeated")
	// ErrUnnameable: a jti, sub, iss or kid is longer than a revocation can
	// name.
	ErrUnnameable = fmt.Errorf("a claim is longer than a revocation can name (%d bytes)", events.MaxValueLength)

	errKidType       = errors.New("kid must be a string")
	errNoKeyVerified = errors.New("no trusted key verifies the signature")
)

// InvalidError is the error of a token that failed verification.
type InvalidError struct {
	Reason error
}

func (e *InvalidError) Error() string { return "jwtverify: invalid token: " + e.Reason.Error() }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the reason, so errors.Is(err, jwt.ErrTokenExpired) works.
func (e *InvalidError) Unwrap() error { return e.Reason }

// Verify checks raw completely and returns its claims, or an
// *InvalidError (matching ErrInvalid) wrapping the reason.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	c, err := v.verify(raw)
	if err != nil {
		return nil, &InvalidError{Reason: err}
	}
	return c, nil
}

// pickKey chooses the key that verifies t and so the names a kid
// revocation can match. A token's header is written by whoever signed it:
// the kid only narrows which keys are tried, it never names the key alone.
//
//   - kid in the JWKS: that JWKS entry (entries, if several share the kid),
//     if it may verify the token's algorithm.
//   - kid-less, or a kid the JWKS lacks: every static key (PEM files, HMAC
//     secret) of the algorithm, and for a kid-less token every JWKS key of
//     it; an unknown kid with no static key asks for a background refresh.
//
// When several keys qualify, each is tried in turn and the first whose
// signature verifies is the one: a kid-less token is never verified by "the
// set" without knowing which key it was. The JWKS is an in-memory snapshot:
// pickKey never waits on the network.
func (v *Verifier) pickKey(t *jwt.Token) (*verifyKey, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, ErrCrit
	}
	kid, err := headerKid(t.Header)
	if err != nil {
		return nil, err
	}
	alg := t.Method.Alg()
	var snap *jwksSnapshot
	if v.jwks != nil {
		snap = v.jwks.current.Load()
	}
	var buf [8]*verifyKey
	cands := buf[:0]
	if kid != "" && snap != nil {
		if named := snap.byKid[kid]; len(named) > 0 {
			for _, k := range named {
				if k.verifies(alg) {
					cands = append(cands, k)
				}
			}
			if len(cands) == 0 {
				return nil, fmt.Errorf("the key with this kid may not verify %s (its type or alg)", alg)
			}
			return pickVerifying(t, cands)
		}
	}
	for _, k := range v.static {
		if k.verifies(alg) {
			cands = append(cands, k)
		}
	}
	if kid == "" && snap != nil {
		for _, k := range snap.all {
			if k.verifies(alg) {
				cands = append(cands, k)
			}
		}
	}
	if len(cands) == 0 {
		if v.jwks != nil && !slices.Contains(hmacAlgs, alg) {
			v.jwks.requestRefresh()
			if snap == nil {
				return nil, ErrJWKSNotLoaded
			}
			if kid != "" {
				return nil, ErrUnknownKID
			}
		}
		return nil, fmt.Errorf("no key for algorithm %s", alg)
	}
	return pickVerifying(t, cands)
}

// pickVerifying returns the only candidate (the parser verifies it), or the
// first of several whose signature verifies.
func pickVerifying(t *jwt.Token, cands []*verifyKey) (*verifyKey, error) {
	if len(cands) == 1 {
		return cands[0], nil
	}
	dot := strings.LastIndexByte(t.Raw, '.')
	if dot < 0 {
		return nil, errNoKeyVerified
	}
	for _, k := range cands {
		if t.Method.Verify(t.Raw[:dot], t.Signature, k.key) == nil {
			return k, nil
		}
	}
	return nil, errNoKeyVerified
}

// headerKid returns the header's kid: absent, or a string a revocation can
// name.
func headerKid(h map[string]any) (string, error) {
	raw, ok := h["kid"]
	if !ok {
		return "", nil
	}
	kid, ok := raw.(string)
	if !ok {
		return "", errKidType
	}
	if len(kid) > events.MaxValueLength {
		return "", fmt.Errorf("kid: %w", ErrUnnameable)
	}
	return kid, nil
}

// verify checks raw completely and returns its claims or the bare reason.
func (v *Verifier) verify(raw string) (*Claims, error) {
	if err := checkUnambiguous(raw); err != nil {
		return nil, err
	}
	mc := jwt.MapClaims{}
	var used *verifyKey
	tok, err := v.parser.ParseWithClaims(raw, mc, func(t *jwt.Token) (any, error) {
		k, err := v.pickKey(t)
		if err != nil {
			return nil, err
		}
		used = k
		return k.key, nil
	})
	if err != nil {
		return nil, err
	}
	c := &Claims{Raw: mc, Algorithm: tok.Method.Alg(), SigningKeyID: used.kid, SigningKeyThumbprint: used.thumbprint}
	if c.SigningKeyID == "" && v.jwks != nil {
		// A static key the JWKS also publishes has that kid as a name too.
		if snap := v.jwks.current.Load(); snap != nil {
			if kids := snap.kidsOf[used.thumbprint]; len(kids) > 0 {
				c.SigningKeyID = kids[0]
			}
		}
	}
	if c.Subject, err = mc.GetSubject(); err != nil {
		return nil, err
	}
	if c.Issuer, err = mc.GetIssuer(); err != nil {
		return nil, err
	}
	if len(v.issuers) > 0 && !slices.Contains(v.issuers, c.Issuer) {
		return nil, fmt.Errorf("%w: %q is not an accepted issuer", jwt.ErrTokenInvalidIssuer, c.Issuer)
	}
	if jti, ok := mc["jti"]; ok {
		s, isString := jti.(string)
		if !isString {
			return nil, fmt.Errorf("%w: jti must be a string", jwt.ErrInvalidType)
		}
		c.ID = s
	}
	// Every admitted token must be revocable by each of these fields.
	for _, f := range [...]struct{ name, value string }{{"jti", c.ID}, {"sub", c.Subject}, {"iss", c.Issuer}} {
		if len(f.value) > events.MaxValueLength {
			return nil, fmt.Errorf("%s: %w", f.name, ErrUnnameable)
		}
	}
	aud, err := mc.GetAudience()
	if err != nil {
		return nil, err
	}
	c.Audience = aud
	exp, err := mc.GetExpirationTime()
	if err != nil || exp == nil { // the parser requires exp: unreachable
		return nil, fmt.Errorf("%w: exp", jwt.ErrTokenRequiredClaimMissing)
	}
	c.ExpiresAt = exp.Time
	if nbf, _ := mc.GetNotBefore(); nbf != nil {
		c.NotBefore = nbf.Time
	}
	iat, _ := mc.GetIssuedAt()
	if iat != nil {
		c.IssuedAt = iat.Time
	} else if v.requireIAT {
		return nil, fmt.Errorf("%w: iat", jwt.ErrTokenRequiredClaimMissing)
	}
	c.KeyID, _ = tok.Header["kid"].(string)
	c.token = events.Token{
		JTI:           c.ID,
		Sub:           c.Subject,
		Iss:           c.Issuer,
		Kid:           c.KeyID,
		KeyID:         c.SigningKeyID,
		KeyThumbprint: used.thumbprint,
		KeyMemo:       &used.memo,
		Claims:        mc,
	}
	if v.jwks != nil {
		// The same key under other kids, or a PEM key the JWKS also
		// publishes: a kid revocation of any of its names retires it.
		// (A new key set purges the verified-token cache.)
		if snap := v.jwks.current.Load(); snap != nil {
			for _, kid := range snap.kidsOf[used.thumbprint] {
				if kid != used.kid {
					c.token.KeyAliases = append(c.token.KeyAliases, kid)
				}
			}
		}
	}
	if iat != nil {
		// Unix() floors a fractional iat: the token counts as issued
		// earlier, which can only make a logout deny it (fail closed).
		c.token.IssuedAt, c.token.HasIssuedAt = iat.Unix(), true
	}
	return c, nil
}
