package agent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/events"
)

// Claims are the verified claims of a token. The agent shares one *Claims
// between every request that presents the same token (see Check): treat it,
// Raw and Audience included, as read-only.
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
	// Raw holds every claim of the payload as decoded from JSON (numbers
	// are float64).
	Raw map[string]any

	token events.Token
}

// Token returns the facts about the token that revocations match against.
func (c *Claims) Token() events.Token { return c.token }

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
// of --algs.
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

func ecAlg(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// ParsePublicKeysPEM returns the public keys in PEM data: PUBLIC KEY (PKIX:
// RSA, ECDSA or Ed25519), RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks
// (the certificate's key; the certificate itself is not validated). Data
// with no key, with a private key or with another kind of block is an error.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %d is a %s: give the public key (openssl pkey -pubout), never a private key", n, block.Type)
			}
			return nil, fmt.Errorf("PEM block %d: unsupported type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %v", n, block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("PEM block %d: RSA key of %d bits; at least 2048 are required", n, k.N.BitLen())
			}
		case *ecdsa.PublicKey:
			if ecAlg(k.Curve) == "" {
				return nil, fmt.Errorf("PEM block %d: unsupported ECDSA curve %s", n, k.Curve.Params().Name)
			}
		case ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("PEM block %d: unsupported key type %T", n, key)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM-encoded public key found")
	}
	return keys, nil
}

// verifier checks signatures and registered claims. It is immutable after
// newVerifier but for the JWKS it reads through jwks.
type verifier struct {
	parser     *jwt.Parser
	issuers    []string
	requireIAT bool
	// byAlg holds the static key (or jwt.VerificationKeySet) for each
	// algorithm that has one, ready to be returned without allocating.
	byAlg map[string]any
	jwks  *jwksSource // nil without WithJWKS
}

func newVerifier(c *config) (*verifier, error) {
	if len(c.algs) == 0 {
		return nil, errors.New("agent: no algorithms: WithAlgorithms is required (for example RS256)")
	}
	var errs []error
	errs = append(errs, c.keyErrs...)
	if len(c.hmacSecret) > 0 && len(c.hmacSecret) < MinHMACSecretLength {
		errs = append(errs, fmt.Errorf("HMAC secret of %d bytes: at least %d are required", len(c.hmacSecret), MinHMACSecretLength))
	}
	if len(c.keys) == 0 && len(c.hmacSecret) == 0 && c.jwksURL == "" {
		errs = append(errs, errors.New("no key source: give a public key, an HMAC secret or a JWKS URL"))
	}
	v := &verifier{issuers: slices.Clone(c.issuers), requireIAT: c.requireIAT, byAlg: map[string]any{}}
	var algs []string
	for _, a := range c.algs {
		switch {
		case strings.EqualFold(a, "none"):
			errs = append(errs, errors.New(`algorithm "none" is never accepted`))
			continue
		case !slices.Contains(knownAlgs, a):
			errs = append(errs, fmt.Errorf("unknown algorithm %q (want one of %s)", a, strings.Join(knownAlgs, ", ")))
			continue
		case slices.Contains(hmacAlgs, a) && len(c.hmacSecret) == 0:
			errs = append(errs, fmt.Errorf("algorithm %s needs an HMAC secret", a))
			continue
		}
		if slices.Contains(algs, a) {
			continue
		}
		algs = append(algs, a)
		if key := staticKey(c, a); key != nil {
			v.byAlg[a] = key
		} else if c.jwksURL == "" {
			errs = append(errs, fmt.Errorf("algorithm %s: no key of its kind (and no JWKS)", a))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(c.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(c.now),
		jwt.WithStrictDecoding(),
	}
	if len(c.audiences) > 0 {
		opts = append(opts, jwt.WithAudience(c.audiences...))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// staticKey returns what the keyfunc hands golang-jwt for alg: one key, a
// VerificationKeySet of several, or nil.
func staticKey(c *config, alg string) any {
	if slices.Contains(hmacAlgs, alg) {
		return c.hmacSecret
	}
	var keys []jwt.VerificationKey
	for _, k := range c.keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			if slices.Contains(rsaAlgs, alg) {
				keys = append(keys, k)
			}
		case *ecdsa.PublicKey:
			if ecAlg(k.Curve) == alg {
				keys = append(keys, k)
			}
		case ed25519.PublicKey:
			if alg == "EdDSA" {
				keys = append(keys, k)
			}
		}
	}
	switch len(keys) {
	case 0:
		return nil
	case 1:
		return keys[0]
	}
	return jwt.VerificationKeySet{Keys: keys}
}

// errUnknownKID is the reason of an ErrInvalid for a kid the JWKS lacks.
var errUnknownKID = errors.New("unknown key ID (kid); the key set is being refreshed")

// keyFunc picks the verification key: the JWKS key named by the token's kid
// when there is a JWKS and a kid, else the static keys of the algorithm.
// It never waits on the network: the JWKS is an in-memory snapshot, and an
// unknown kid only asks for a background refresh.
func (v *verifier) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	static := v.byAlg[alg]
	if v.jwks != nil && !slices.Contains(hmacAlgs, alg) {
		if set := v.jwks.current.Load(); set != nil {
			key, err := set.kf.Keyfunc(t)
			if err == nil {
				return key, nil
			}
			if static != nil {
				return static, nil
			}
			if _, hasKid := t.Header["kid"]; hasKid && isNotFound(err) {
				v.jwks.requestRefresh()
				return nil, errUnknownKID
			}
			return nil, err
		}
		if static == nil {
			v.jwks.requestRefresh()
			return nil, errors.New("the JWKS has not been loaded yet")
		}
	}
	if static == nil {
		return nil, fmt.Errorf("no key for algorithm %s", alg)
	}
	return static, nil
}

// verify checks raw completely and returns its claims.
func (v *verifier) verify(raw string) (*Claims, error) {
	mc := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, mc, v.keyFunc)
	if err != nil {
		return nil, err
	}
	c := &Claims{Raw: mc, Algorithm: tok.Method.Alg()}
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
		JTI:    c.ID,
		Sub:    c.Subject,
		Iss:    c.Issuer,
		Kid:    c.KeyID,
		Claims: mc,
	}
	if iat != nil {
		// Unix() floors a fractional iat: the token counts as issued
		// earlier, which can only make a logout deny it (fail closed).
		c.token.IssuedAt, c.token.HasIssuedAt = iat.Unix(), true
	}
	return c, nil
}
