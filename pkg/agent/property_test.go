package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// TestPropertyAgentMatchesContract runs randomly generated keys, agents,
// tokens and revocations through the real agent (PEM keys, a JWKS served
// over loopback HTTP, the denylist, the verified-token cache) and through
// propModel, a plain restatement of the contract that shares no code with
// the agent, and requires the same decision (allowed, revoked or invalid)
// for every check.
//
// Agents with a tiny denylist capacity spill revocations, and a spilled
// revocation with several matchers may deny more than it matches (see
// cache.Denylist): for them only "the model revokes or refuses ⇒ the agent
// refuses" and "the model refuses as invalid ⇔ the agent does" are
// required.
//
// REVOCAST_PROPERTY_SEED=<n> replays a run (the seed is logged);
// REVOCAST_PROPERTY_SCENARIOS=<n> changes how many agents are generated.
func TestPropertyAgentMatchesContract(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REVOCAST_PROPERTY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("REVOCAST_PROPERTY_SEED: %v", err)
		}
	}
	scenarios := 300
	if testing.Short() {
		scenarios = 40
	}
	if s := os.Getenv("REVOCAST_PROPERTY_SCENARIOS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("REVOCAST_PROPERTY_SCENARIOS: %q", s)
		}
		scenarios = n
	}
	t.Logf("seed %d (replay with REVOCAST_PROPERTY_SEED=%d)", seed, seed)

	pool := propKeyPool(t)
	js := newJWKSServer(t)
	var st propStats
	start := time.Now()
	for i := 0; i < scenarios && !t.Failed(); i++ {
		rng := mrand.New(mrand.NewPCG(seed, uint64(i)))
		runPropScenario(t, rng, seed, i, pool, js, &st)
	}
	t.Logf("%d scenarios, %d tokens, %d revocations, %d lifts, %d checks in %v: %d allowed, %d revoked, %d invalid (%d checks on capacity-limited agents)",
		scenarios, st.tokens, st.revocations, st.lifts, st.checks, time.Since(start).Round(time.Millisecond),
		st.decisions[decAllowed], st.decisions[decRevoked], st.decisions[decInvalid], st.limited)
	// The generator must keep reaching each outcome, or the test proves little.
	for d, n := range st.decisions {
		if n*20 < st.checks {
			t.Errorf("only %d of %d checks were %s: the generator drifted", n, st.checks, propDecision(d))
		}
	}
}

type propStats struct {
	tokens, revocations, lifts, checks, limited int
	decisions                                   [3]int
}

type propDecision int

const (
	decAllowed propDecision = iota
	decRevoked
	decInvalid
)

func (d propDecision) String() string { return [...]string{"allowed", "revoked", "invalid"}[d] }

// Keys.

type propKind int

const (
	kindRSA propKind = iota
	kindEC
	kindEd
	kindHMAC
)

type propKey struct {
	name       string
	kind       propKind
	priv, pub  any
	weak       bool   // RSA under 2048 bits: never trusted
	thumbprint string // RFC 7638, computed here independently of the agent
}

// signs reports whether a key of this kind produces alg.
func (k *propKey) fits(alg string) bool {
	switch k.kind {
	case kindRSA:
		return alg == "RS256" || alg == "PS256"
	case kindEC:
		return alg == "ES256"
	case kindEd:
		return alg == "EdDSA"
	}
	return alg == "HS256"
}

func (k *propKey) algs() []string {
	switch k.kind {
	case kindRSA:
		return []string{"RS256", "PS256"}
	case kindEC:
		return []string{"ES256"}
	case kindEd:
		return []string{"EdDSA"}
	}
	return []string{"HS256"}
}

var (
	propPoolOnce sync.Once
	propPool     []*propKey
	propPoolErr  error
)

// propKeyPool returns the keys of every scenario: two RSA-2048, two P-256,
// two Ed25519, a 1024-bit RSA key (only ever offered through the JWKS,
// which must skip it) and the HMAC secret. Any of them not trusted by an
// agent is a stranger's key to it.
func propKeyPool(t *testing.T) []*propKey {
	k := getKeys(t)
	propPoolOnce.Do(func() {
		weak, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			propPoolErr = err
			return
		}
		ec2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			propPoolErr = err
			return
		}
		_, ed2, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			propPoolErr = err
			return
		}
		propPool = []*propKey{
			{name: "rsaA", kind: kindRSA, priv: k.rsa, pub: &k.rsa.PublicKey},
			{name: "rsaB", kind: kindRSA, priv: k.rsa2, pub: &k.rsa2.PublicKey},
			{name: "ecA", kind: kindEC, priv: k.ec, pub: &k.ec.PublicKey},
			{name: "ecB", kind: kindEC, priv: ec2, pub: &ec2.PublicKey},
			{name: "edA", kind: kindEd, priv: k.ed, pub: k.ed.Public()},
			{name: "edB", kind: kindEd, priv: ed2, pub: ed2.Public()},
			{name: "rsaWeak", kind: kindRSA, priv: weak, pub: &weak.PublicKey, weak: true},
			{name: "hmac", kind: kindHMAC, priv: k.hmac, pub: k.hmac},
		}
		for _, pk := range propPool {
			if pk.thumbprint, err = propThumbprint(pk); err != nil {
				propPoolErr = err
				return
			}
		}
	})
	if propPoolErr != nil {
		t.Fatal(propPoolErr)
	}
	return propPool
}

// propThumbprint computes the RFC 7638 thumbprint from the key's JWK (as
// jwkset encodes it): SHA-256 of the required members, sorted, without
// whitespace; json.Marshal of a map sorts the names.
func propThumbprint(k *propKey) (string, error) {
	b64 := base64.RawURLEncoding
	var members map[string]string
	if k.kind == kindHMAC {
		members = map[string]string{"k": b64.EncodeToString(k.pub.([]byte)), "kty": "oct"}
	} else {
		j, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{})
		if err != nil {
			return "", err
		}
		m := j.Marshal()
		switch k.kind {
		case kindRSA:
			members = map[string]string{"e": m.E, "kty": "RSA", "n": m.N}
		case kindEC:
			members = map[string]string{"crv": string(m.CRV), "kty": "EC", "x": m.X, "y": m.Y}
		case kindEd:
			members = map[string]string{"crv": string(m.CRV), "kty": "OKP", "x": m.X}
		}
	}
	data, err := json.Marshal(members)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return b64.EncodeToString(sum[:]), nil
}

// Agents.

// propJWK is one entry of the JWKS.
type propJWK struct {
	key           int // index in the pool
	kid, use, alg string
}

type propAgent struct {
	static     []int // pool indexes given as PEM (and the HMAC secret)
	jwks       []propJWK
	hasJWKS    bool
	algs       []string
	issuers    []string
	audiences  []string
	leeway     time.Duration
	lifetime   time.Duration // L announced by the broadcaster (and used by its Prepare)
	lowered    time.Duration // WithMaxTokenLifetime; 0 for none
	requireIAT bool
	capacity   int // WithDenylistCapacity; 0 for the default
	now        time.Time
}

func (c *propAgent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "now=%s algs=%v", c.now.Format(time.RFC3339Nano), c.algs)
	var static []string
	for _, i := range c.static {
		static = append(static, propPool[i].name)
	}
	fmt.Fprintf(&b, " static=%v", static)
	if c.hasJWKS {
		b.WriteString(" jwks=[")
		for i, j := range c.jwks {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "{%s kid=%q use=%q alg=%q}", propPool[j.key].name, j.kid, j.use, j.alg)
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, " issuers=%v audiences=%v leeway=%v L=%v lowered=%v requireIAT=%v capacity=%d",
		c.issuers, c.audiences, c.leeway, c.lifetime, c.lowered, c.requireIAT, c.capacity)
	return b.String()
}

var propKids = []string{"k1", "k2", "k3", "k4"}

func genPropAgent(rng *mrand.Rand, pool []*propKey) *propAgent {
	c := &propAgent{leeway: DefaultLeeway, lifetime: events.DefaultMaxTokenLifetime}
	base := time.Now().Truncate(time.Second)
	c.now = base
	if rng.IntN(3) > 0 {
		c.now = base.Add(time.Duration(1 + rng.Int64N(int64(time.Second)-1)))
	}
	mode := rng.IntN(3) // 0 PEM only, 1 JWKS only, 2 both
	if mode != 1 {
		for i, k := range pool {
			if !k.weak && k.kind != kindHMAC && rng.IntN(3) == 0 {
				c.static = append(c.static, i)
			}
		}
		if rng.IntN(4) == 0 {
			c.static = append(c.static, len(pool)-1) // the HMAC secret
		}
		if len(c.static) == 0 {
			c.static = append(c.static, rng.IntN(2)) // an RSA key
		}
	}
	if mode != 0 {
		c.hasJWKS = true
		n := rng.IntN(6)
		for range n {
			j := propJWK{key: rng.IntN(len(pool) - 1)} // never the HMAC secret
			switch r := rng.IntN(20); {
			case r < 12:
				j.kid = propKids[rng.IntN(len(propKids))] // may repeat a kid
			case r < 15:
				j.kid = "" // only for kid-less tokens
			case r < 18:
				j.kid = pool[rng.IntN(len(pool))].thumbprint // another key's (or its own) thumbprint as kid
			default:
				j.kid = "kid-" + strconv.Itoa(rng.IntN(100))
			}
			switch r := rng.IntN(10); {
			case r == 0:
				j.use = "enc"
			case r < 3:
				j.use = "sig"
			}
			if rng.IntN(4) == 0 {
				algs := pool[j.key].algs()
				j.alg = algs[rng.IntN(len(algs))]
			}
			c.jwks = append(c.jwks, j)
		}
	}
	// The allow-list: a subset of what the agent's keys can verify.
	var possible []string
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA", "HS256"} {
		ok := c.hasJWKS && alg != "HS256"
		for _, i := range c.static {
			ok = ok || pool[i].fits(alg)
		}
		if ok {
			possible = append(possible, alg)
		}
	}
	for _, alg := range possible {
		if rng.IntN(5) > 0 {
			c.algs = append(c.algs, alg)
		}
	}
	if len(c.algs) == 0 {
		c.algs = possible[:1]
	}
	if rng.IntN(3) == 0 {
		c.issuers = []string{"iss-a"}
		if rng.IntN(2) == 0 {
			c.issuers = append(c.issuers, "iss-b")
		}
	}
	if rng.IntN(3) == 0 {
		c.audiences = []string{testAudience}
	}
	c.leeway = []time.Duration{0, DefaultLeeway, time.Minute}[rng.IntN(3)]
	if rng.IntN(4) == 0 {
		c.lifetime = 2 * time.Hour
	}
	switch rng.IntN(6) {
	case 0:
		c.lowered = time.Hour
	case 1:
		c.lowered = 30 * time.Hour // cannot raise L
	}
	c.requireIAT = rng.IntN(6) == 0
	if rng.IntN(5) == 0 {
		c.capacity = 1 + rng.IntN(2)
	}
	return c
}

// build makes the real agent: PEM data, JWKS over loopback HTTP (loaded),
// synced with the broadcaster's L.
func (c *propAgent) build(t *testing.T, pool []*propKey, js *jwksServer) *Agent {
	t.Helper()
	opts := []Option{
		WithLogger(testLogger(t)),
		WithAlgorithms(c.algs...),
		WithLeeway(c.leeway),
		WithClock(func() time.Time { return c.now }),
		WithMaxStaleness(time.Hour),
		WithRequireIssuedAt(c.requireIAT),
	}
	var pemData []byte
	for _, i := range c.static {
		if pool[i].kind == kindHMAC {
			opts = append(opts, WithHMACSecret(pool[i].pub.([]byte)))
			continue
		}
		pemData = append(pemData, pemBytes(t, pool[i].pub)...)
	}
	if pemData != nil {
		opts = append(opts, WithPublicKeyPEM(pemData))
	}
	if c.hasJWKS {
		var set jwkset.JWKSMarshal
		for _, j := range c.jwks {
			jw, err := jwkset.NewJWKFromKey(pool[j.key].pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
				KID: j.kid, USE: jwkset.USE(j.use), ALG: jwkset.ALG(j.alg),
			}})
			if err != nil {
				t.Fatalf("JWK: %v", err)
			}
			set.Keys = append(set.Keys, jw.Marshal())
		}
		js.mu.Lock()
		js.set = set
		js.mu.Unlock()
		opts = append(opts, WithJWKS(js.URL), WithJWKSRefresh(time.Hour, time.Hour))
	}
	if len(c.issuers) > 0 {
		opts = append(opts, WithIssuers(c.issuers...))
	}
	if len(c.audiences) > 0 {
		opts = append(opts, WithAudiences(c.audiences...))
	}
	if c.lowered > 0 {
		opts = append(opts, WithMaxTokenLifetime(c.lowered))
	}
	if c.capacity > 0 {
		opts = append(opts, WithDenylistCapacity(c.capacity))
	}
	a, err := New([]string{"http://127.0.0.1:1"}, opts...)
	if err != nil {
		t.Fatalf("agent %v: %v", c, err)
	}
	data, _ := json.Marshal(events.Synced{Head: "1-0", MaxTokenLifetime: int64(c.lifetime / time.Second)})
	feed(t, a, sse.Event{Type: events.TypeSynced, Data: data})
	if c.hasJWKS {
		if err := a.verifier.Refresh(context.Background()); err != nil {
			t.Fatalf("JWKS: %v", err)
		}
	}
	return a
}

// Tokens.

// member is one member of a JSON object, in order; a name may repeat.
type member struct {
	name  string
	value any
}

type object []member

func (o object) get(name string) (any, bool) {
	for _, m := range o {
		if m.name == name {
			return m.value, true
		}
	}
	return nil, false
}

func (o object) repeats() bool {
	seen := map[string]bool{}
	for _, m := range o {
		if seen[m.name] {
			return true
		}
		seen[m.name] = true
		if inner, ok := m.value.(object); ok && inner.repeats() {
			return true
		}
	}
	return false
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(m.name)
		value, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type propToken struct {
	key     int // signing key (pool index)
	alg     string
	header  object
	payload object
	badSig  bool
	raw     string
}

func (tk *propToken) String() string {
	h, _ := json.Marshal(tk.header)
	p, _ := json.Marshal(tk.payload)
	s := fmt.Sprintf("signed by %s with %s, header %s, payload %s", propPool[tk.key].name, tk.alg, short(string(h)), short(string(p)))
	if tk.badSig {
		s += ", signature corrupted"
	}
	return s
}

// short abbreviates the long values of the generator in reports.
func short(s string) string {
	for _, c := range []string{"x", "y"} {
		s = strings.ReplaceAll(s, strings.Repeat(c, events.MaxValueLength), c+"×1024")
	}
	return s
}

var (
	propLong = strings.Repeat("x", events.MaxValueLength+1) // no revocation can name it
	propEdge = strings.Repeat("y", events.MaxValueLength)   // the longest that one can
)

func pick[T any](rng *mrand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// genPropToken makes a token for agent c. Most tokens are meant to verify
// (a trusted key, an allowed algorithm, sane claims), so that revocations
// have something to deny; the others draw every field freely, with the
// faults the agent must refuse.
func genPropToken(t *testing.T, rng *mrand.Rand, c *propAgent, pool []*propKey, serial int) *propToken {
	tk := &propToken{}
	clean := rng.IntN(100) < 65
	// fault: whether to draw this field freely (always, for unclean tokens)
	fault := func(oneIn int) bool { return !clean || rng.IntN(oneIn) == 0 }

	var trusted []int // keys the agent trusts for an allowed algorithm
	consider := func(i int) {
		for _, alg := range pool[i].algs() {
			if slices.Contains(c.algs, alg) && !slices.Contains(trusted, i) && !pool[i].weak {
				trusted = append(trusted, i)
			}
		}
	}
	for _, i := range c.static {
		consider(i)
	}
	for _, j := range c.jwks {
		if j.use != "enc" {
			consider(j.key)
		}
	}
	if len(trusted) > 0 && !fault(15) {
		tk.key = pick(rng, trusted...)
		var algs []string
		for _, alg := range pool[tk.key].algs() {
			if slices.Contains(c.algs, alg) {
				algs = append(algs, alg)
			}
		}
		tk.alg = pick(rng, algs...)
	} else {
		tk.key = rng.IntN(len(pool))
		tk.alg = pick(rng, pool[tk.key].algs()...)
	}
	k := pool[tk.key]

	tk.header = object{{"alg", tk.alg}, {"typ", "JWT"}}
	var ownKids []string // the signing key's kids in the JWKS
	for _, j := range c.jwks {
		if j.key == tk.key && j.kid != "" {
			ownKids = append(ownKids, j.kid)
		}
	}
	r := rng.IntN(20)
	if clean && r >= 10 && rng.IntN(4) > 0 {
		r = rng.IntN(10)
	}
	switch {
	case r < 5: // no kid
	case r < 8: // a JWKS kid of the signing key, if it has one
		if len(ownKids) > 0 {
			tk.header = append(tk.header, member{"kid", pick(rng, ownKids...)})
		}
	case r < 9:
		tk.header = append(tk.header, member{"kid", "rotated-out"}) // a name no key has
	case r < 10:
		tk.header = append(tk.header, member{"kid", k.thumbprint})
	case r < 13: // a kid that names another key, or none in the JWKS
		tk.header = append(tk.header, member{"kid", pick(rng, propKids...)})
	case r < 14:
		tk.header = append(tk.header, member{"kid", pool[rng.IntN(len(pool))].thumbprint})
	case r < 16:
		tk.header = append(tk.header, member{"kid", pick(rng, propLong, propEdge)})
	case r < 17:
		tk.header = append(tk.header, member{"kid", pick[any](rng, 7, true, []string{"k1"})})
	default:
		tk.header = append(tk.header, member{"kid", "kid-" + strconv.Itoa(rng.IntN(100))})
	}
	if fault(25) && rng.IntN(8) == 0 {
		tk.header = append(tk.header, member{"crit", pick[any](rng, []string{"exp"}, []string{})})
	}
	if fault(25) && rng.IntN(8) == 0 {
		m := tk.header[rng.IntN(len(tk.header))]
		tk.header = append(tk.header, member{m.name, pick[any](rng, m.value, "k2")})
	}

	now := c.now.Unix()
	p := object{}
	add := func(name string, v any) { p = append(p, member{name, v}) }
	str := func(name string, common []string) {
		r := rng.IntN(40)
		if !fault(10) {
			r = rng.IntN(35)
		}
		switch {
		case r < 32:
			add(name, pick(rng, common...))
		case r < 35: // absent
		case r < 36:
			add(name, 42)
		case r < 38:
			add(name, propEdge)
		default:
			add(name, propLong)
		}
	}
	str("sub", []string{"alice", "bob", "mallory"})
	if len(c.issuers) > 0 && !fault(10) {
		add("iss", pick(rng, c.issuers...))
	} else {
		str("iss", []string{"iss-a", "iss-b", testIssuer})
	}
	if rng.IntN(5) > 0 {
		str("jti", []string{"jti-" + strconv.Itoa(serial), "jti-" + strconv.Itoa(serial), "shared-jti"})
	}
	r = rng.IntN(8)
	if len(c.audiences) > 0 && !fault(10) {
		r = rng.IntN(3)
	}
	switch r {
	case 0, 1:
		add("aud", testAudience)
	case 2:
		add("aud", []string{"billing", testAudience})
	case 3:
		add("aud", []string{"billing"})
	case 4:
		add("aud", "billing")
	case 5:
		add("aud", pick[any](rng, []string{}, 5, "", []any{"billing", 5.0}))
	}
	switch rng.IntN(7) {
	case 0:
		add("groups", []string{"staff"})
	case 1:
		add("groups", []string{"staff", "contractors"})
	case 2:
		add("groups", "contractors")
	case 3:
		add("groups", []any{1.0, "admins", true})
	}
	if rng.IntN(3) > 0 {
		add("tenant", pick[any](rng, "acme", "globex", "acme", 7))
	}
	if rng.IntN(3) == 0 {
		add("level", pick[any](rng, 3, 5, "3", 3.5))
	}
	if rng.IntN(3) == 0 {
		add("admin", pick(rng, true, false))
	}
	if rng.IntN(10) == 0 {
		add("ctx", object{{"t", 1}, {"u", "v"}})
	}

	L := int64(c.lifetime / time.Second)
	var iat int64
	hasIAT := rng.IntN(8) > 0
	if hasIAT {
		if fault(8) {
			iat = pick(rng, now, now-1, now-60, now-3600, now-10*3600, now+10, now+2*3600, now-30*3600)
		} else {
			iat = pick(rng, now, now, now-1, now-60, now-3600)
		}
		if fault(15) && rng.IntN(10) == 0 {
			add("iat", strconv.FormatInt(iat, 10))
		} else {
			add("iat", iat)
		}
	}
	from := now
	if hasIAT {
		from = iat
	}
	r = 5 + rng.IntN(7)
	if fault(8) {
		r = rng.IntN(12)
	}
	switch r {
	case 0: // expired, or just within the leeway
		add("exp", pick(rng, now-3600, now-10, now-45))
	case 1:
		add("exp", from+L)
	case 2:
		add("exp", from+L+1)
	case 3:
		add("exp", from+pick[int64](rng, 30*3600, 48*3600, 3*3600))
	case 4:
		if rng.IntN(2) == 0 {
			add("exp", strconv.FormatInt(now+3600, 10))
		} // else no exp
	default:
		add("exp", max(from, now)+pick[int64](rng, 300, 3600, 1800))
	}
	if rng.IntN(10) == 0 {
		if fault(5) {
			add("nbf", pick(rng, now-3600, now+3600, now+20))
		} else {
			add("nbf", now-3600)
		}
	}
	rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	if fault(25) && rng.IntN(8) == 0 {
		m := p[rng.IntN(len(p))]
		add(m.name, pick[any](rng, m.value, "other"))
	}
	if fault(25) && rng.IntN(15) == 0 {
		add("ctx", object{{"t", 1}, {"t", 2}})
	}
	tk.payload = p
	tk.badSig = fault(25) && rng.IntN(6) == 0
	tk.raw = tk.sign(t, k)
	return tk
}

func (tk *propToken) sign(t *testing.T, k *propKey) string {
	t.Helper()
	h, err := json.Marshal(tk.header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(tk.payload)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	sig, err := jwt.GetSigningMethod(tk.alg).Sign(signing, k.priv)
	if err != nil {
		t.Fatalf("sign %s with %s: %v", tk.alg, k.name, err)
	}
	if tk.badSig {
		sig[len(sig)/2] ^= 0x20
	}
	return signing + "." + enc.EncodeToString(sig)
}

// Revocations.

type propRev struct {
	JTI, Sub, Iss, Kid string
	Claims             map[string]any
	IssuedBefore       time.Time // as posted; zero for none
	Ban                bool
	ExpiresAt          time.Time // as posted; zero for none

	key string // the server's key, for lifts
}

// wire is the revocation as an operator posts it.
func (r *propRev) wire() []byte {
	m := map[string]any{}
	for name, v := range map[string]string{"jti": r.JTI, "sub": r.Sub, "iss": r.Iss, "kid": r.Kid} {
		if v != "" {
			m[name] = v
		}
	}
	if r.Claims != nil {
		m["claims"] = r.Claims
	}
	if !r.IssuedBefore.IsZero() {
		m["issued_before"] = r.IssuedBefore.UTC().Format(time.RFC3339Nano)
	}
	if r.Ban {
		m["ban"] = true
	}
	if !r.ExpiresAt.IsZero() {
		m["expires_at"] = r.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	data, _ := json.Marshal(m)
	return data
}

func (r *propRev) String() string { return short(string(r.wire())) }

// identity is what makes two revocations the same one in the contract:
// their matchers and ban, not their times.
func (r *propRev) identity() string {
	claims, _ := json.Marshal(r.Claims) // map keys sorted
	return fmt.Sprintf("%q %q %q %q %s %v", r.JTI, r.Sub, r.Iss, r.Kid, claims, r.Ban)
}

func genPropRev(rng *mrand.Rand, c *propAgent, pool []*propKey, toks []*propToken) *propRev {
	r := &propRev{}
	// Values the scenario's tokens carry, so that revocations hit.
	fromTokens := func(name string, fallback ...string) string {
		var vs []string
		for _, tk := range toks {
			if v, ok := tk.payload.get(name); ok {
				if s, ok := v.(string); ok && len(s) <= events.MaxValueLength {
					vs = append(vs, s)
				}
			}
		}
		if len(vs) == 0 || rng.IntN(5) == 0 {
			return pick(rng, fallback...)
		}
		return pick(rng, vs...)
	}
	kidName := func() string {
		switch r := rng.IntN(10); {
		case r < 3:
			return pick(rng, propKids...)
		case r < 7:
			return pool[rng.IntN(len(pool))].thumbprint
		case r < 8:
			return "rotated-out"
		case r < 9:
			for _, tk := range toks {
				if v, ok := tk.header.get("kid"); ok {
					if s, ok := v.(string); ok && len(s) <= events.MaxValueLength {
						return s
					}
				}
			}
			return "kid-7"
		}
		return "kid-" + strconv.Itoa(rng.IntN(100))
	}
	claims := func() map[string]any {
		m := map[string]any{}
		for range 1 + rng.IntN(2) {
			switch rng.IntN(6) {
			case 0:
				m["tenant"] = pick[any](rng, "acme", "globex", 7.0)
			case 1:
				m["groups"] = pick[any](rng, "contractors", "staff", "admins", 1.0, true)
			case 2:
				m["aud"] = pick(rng, testAudience, "billing")
			case 3:
				m["level"] = pick[any](rng, 3.0, 5.0, "3", 3.5)
			case 4:
				m["admin"] = pick(rng, true, false)
			case 5:
				m["missing"] = "x"
			}
		}
		return m
	}
	maybeIss := func(p int) {
		if rng.IntN(100) < p {
			r.Iss = fromTokens("iss", "iss-a", "iss-b")
		}
	}
	// issuedBefore: explicit times around the clock, including the current
	// second, and one so far back that the revocation has expired.
	issuedBefore := func() time.Time {
		now := c.now
		return pick(rng, now, now.Truncate(time.Second), now.Add(-time.Hour), now.Add(time.Hour),
			now.Add(-30*time.Hour), now.Add(-10*time.Second), now.Truncate(time.Second).Add(-time.Second+time.Millisecond))
	}
	switch rng.IntN(9) {
	case 0, 1: // jti: one token
		r.JTI = fromTokens("jti", "shared-jti", "jti-none")
		maybeIss(25)
		if rng.IntN(8) == 0 {
			r.Sub = fromTokens("sub", "alice")
		}
		if rng.IntN(12) == 0 {
			r.Kid = kidName()
		}
		if rng.IntN(8) == 0 {
			r.Claims = claims()
		}
	case 2, 3: // sub: a logout (issued_before defaults to now) or a ban
		r.Sub = fromTokens("sub", "alice", "bob")
		maybeIss(30)
		if rng.IntN(5) == 0 {
			r.Claims = claims()
		}
		switch rng.IntN(3) {
		case 0:
			r.Ban = true
		case 1:
			r.IssuedBefore = issuedBefore()
		}
	case 4, 5: // kid: a signing key by its JWKS kid, its thumbprint, or a header name
		r.Kid = kidName()
		maybeIss(20)
		if rng.IntN(7) == 0 {
			r.Claims = claims()
		}
		if rng.IntN(10) == 0 {
			r.Sub = fromTokens("sub", "alice")
		}
		switch rng.IntN(6) {
		case 0:
			r.Ban = true
		case 1:
			r.IssuedBefore = issuedBefore()
		}
	case 6, 7: // claims: tenant-wide logout, or ban
		r.Claims = claims()
		maybeIss(40)
		switch rng.IntN(3) {
		case 0:
			r.Ban = true
		case 1:
			r.IssuedBefore = issuedBefore()
		}
	default: // combinations
		r.Sub = fromTokens("sub", "alice")
		r.Kid = kidName()
		if rng.IntN(2) == 0 {
			r.Claims = claims()
		}
		maybeIss(50)
		if rng.IntN(3) == 0 {
			r.Ban = true
		}
	}
	if rng.IntN(8) == 0 {
		r.ExpiresAt = pick(rng, c.now.Add(-time.Hour), c.now.Add(time.Hour), c.now.Add(72*time.Hour))
	}
	return r
}

// apply posts r as the broadcaster would (Prepare at the agent's now, with
// the broadcaster's L) and feeds the event to the agent.
func (r *propRev) apply(t *testing.T, a *Agent, c *propAgent) {
	t.Helper()
	rev, err := events.DecodeRevocation(r.wire())
	if err != nil {
		t.Fatalf("generated revocation %s: %v", r, err)
	}
	if err := (events.Policy{MaxTokenLifetime: c.lifetime}).Prepare(&rev, c.now); err != nil {
		t.Fatalf("generated revocation %s: %v", r, err)
	}
	r.key = rev.Key
	data, err := json.Marshal(rev)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, a, sse.Event{Type: events.TypeRevoke, Data: data})
}

// The model: the contract in plain Go, from the token's JSON as generated.

type propModel struct {
	c    *propAgent
	pool []*propKey
	live map[string]*propRev // by identity: a revocation replaces its namesake
}

// decide returns the contract's decision and why.
func (m *propModel) decide(tk *propToken) (propDecision, string) {
	c := m.c
	invalid := func(why string) (propDecision, string) { return decInvalid, why }
	if tk.header.repeats() || tk.payload.repeats() {
		return invalid("a member name is repeated")
	}
	if _, ok := tk.header.get("crit"); ok {
		return invalid("crit header")
	}
	if !slices.Contains(c.algs, tk.alg) {
		return invalid("algorithm not allowed")
	}
	kid, hasKid := "", false
	if v, ok := tk.header.get("kid"); ok {
		s, isString := v.(string)
		if !isString {
			return invalid("kid not a string")
		}
		if len(s) > events.MaxValueLength {
			return invalid("kid too long to revoke")
		}
		kid, hasKid = s, true
	}

	// Which keys may verify the token: the JWKS entries named by its kid,
	// or else the static keys, and for a kid-less token every JWKS key.
	signer := m.pool[tk.key]
	usable := func(j propJWK) bool {
		k := m.pool[j.key]
		return !k.weak && (j.use == "" || j.use == "sig")
	}
	fits := func(j propJWK) bool { return m.pool[j.key].fits(tk.alg) && (j.alg == "" || j.alg == tk.alg) }
	named := false
	for _, j := range c.jwks {
		named = named || (hasKid && usable(j) && j.kid == kid)
	}
	verified := false
	if named {
		for _, j := range c.jwks {
			if usable(j) && j.kid == kid && fits(j) && j.key == tk.key {
				verified = true
			}
		}
	} else {
		for _, i := range c.static {
			verified = verified || (i == tk.key && signer.fits(tk.alg))
		}
		if !hasKid {
			for _, j := range c.jwks {
				verified = verified || (usable(j) && fits(j) && j.key == tk.key)
			}
		}
	}
	if !verified || tk.badSig {
		return invalid("no trusted key verifies the signature")
	}

	p := tk.payload
	now := c.now
	number := func(name string) (float64, bool, bool) { // value, present, well-typed
		v, ok := p.get(name)
		if !ok {
			return 0, false, true
		}
		switch n := v.(type) {
		case int:
			return float64(n), true, true
		case int64:
			return float64(n), true, true
		case float64:
			return n, true, true
		}
		return 0, true, false
	}
	at := func(sec float64) time.Time { return time.Unix(int64(sec), 0) }
	exp, hasExp, ok := number("exp")
	if !ok || !hasExp {
		return invalid("exp missing or not a number")
	}
	if !now.Before(at(exp).Add(c.leeway)) {
		return invalid("expired")
	}
	if nbf, has, ok := number("nbf"); !ok || has && now.Before(at(nbf).Add(-c.leeway)) {
		return invalid("nbf")
	}
	iat, hasIAT, ok := number("iat")
	if !ok || hasIAT && now.Before(at(iat).Add(-c.leeway)) {
		return invalid("iat not a number or in the future")
	}
	if !hasIAT && c.requireIAT {
		return invalid("iat required")
	}
	strs := map[string]string{}
	for _, name := range []string{"sub", "iss", "jti"} {
		if v, ok := p.get(name); ok {
			s, isString := v.(string)
			if !isString {
				return invalid(name + " not a string")
			}
			if len(s) > events.MaxValueLength {
				return invalid(name + " too long to revoke")
			}
			strs[name] = s
		}
	}
	var aud []string
	if v, ok := p.get("aud"); ok {
		switch a := v.(type) {
		case string:
			aud = []string{a}
		case []string:
			aud = a
		case []any:
			return invalid("aud array with an element that is not a string")
		default:
			// golang-jwt reads an aud that is neither a string nor an
			// array as no audience: refused only where one is required.
		}
	}
	if len(c.audiences) > 0 && !slices.ContainsFunc(aud, func(a string) bool { return a != "" && slices.Contains(c.audiences, a) }) {
		return invalid("audience not accepted")
	}
	if len(c.issuers) > 0 && !slices.Contains(c.issuers, strs["iss"]) {
		return invalid("issuer not accepted")
	}
	L := c.lifetime
	if c.lowered > 0 && c.lowered < L {
		L = c.lowered
	}
	start := float64(now.Unix())
	if hasIAT {
		start = iat
	}
	if exp-start > L.Seconds() {
		return invalid("lifetime exceeds L")
	}

	// The names a kid revocation can give the token: its header kid, and
	// the key that verified it: its thumbprint and its JWKS kid.
	names := []string{signer.thumbprint}
	if hasKid {
		names = append(names, kid)
	}
	for _, j := range c.jwks {
		if usable(j) && j.key == tk.key && j.kid != "" {
			names = append(names, j.kid)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(m.live)) {
		r := m.live[id]
		if m.matches(r, tk, strs, names, iat, hasIAT) {
			return decRevoked, "revoked by " + r.String()
		}
	}
	return decAllowed, "no live revocation matches"
}

// alive: the revocation has not expired, with the server's defaults:
// a jti revocation lives L, a logout until issued_before + L.
func (m *propModel) alive(r *propRev) bool {
	exp := r.ExpiresAt
	if exp.IsZero() {
		switch ib := m.issuedBefore(r); {
		case r.JTI != "":
			exp = m.c.now.Add(m.c.lifetime)
		case !ib.IsZero():
			exp = ib.Add(m.c.lifetime)
		}
	}
	// The agent keeps a revocation past expires_at for the leeway plus a
	// minute, at most the expiry grace when the leeway allows (it still
	// denies then: over-denial, never a bypass).
	keep := m.c.leeway + time.Minute
	if m.c.leeway < events.DefaultExpiryGrace {
		keep = min(keep, events.DefaultExpiryGrace)
	}
	return exp.IsZero() || exp.Add(keep).After(m.c.now)
}

// issuedBefore applies the server's default: now, for a logout of a sub or
// claims without jti, kid or ban.
func (m *propModel) issuedBefore(r *propRev) time.Time {
	if r.IssuedBefore.IsZero() && (r.Sub != "" || r.Claims != nil) && r.JTI == "" && r.Kid == "" && !r.Ban {
		return m.c.now
	}
	return r.IssuedBefore
}

func (m *propModel) matches(r *propRev, tk *propToken, strs map[string]string, names []string, iat float64, hasIAT bool) bool {
	if !m.alive(r) {
		return false
	}
	if r.JTI != "" && r.JTI != strs["jti"] || r.Sub != "" && r.Sub != strs["sub"] || r.Iss != "" && r.Iss != strs["iss"] {
		return false
	}
	if r.Kid != "" && !slices.Contains(names, r.Kid) {
		return false
	}
	for name, want := range r.Claims {
		got, _ := tk.payload.get(name)
		if !claimHas(got, want) {
			return false
		}
	}
	// issued_before: only tokens issued strictly before it; iat is a whole
	// second; a token without iat may have been issued any time: it matches.
	if ib := m.issuedBefore(r); !ib.IsZero() && hasIAT && !time.Unix(int64(iat), 0).Before(ib) {
		return false
	}
	return true
}

// claimHas: a matcher value equals a scalar claim of the same JSON type, or
// an element of an array claim.
func claimHas(got, want any) bool {
	switch g := got.(type) {
	case []string:
		return slices.ContainsFunc(g, func(e string) bool { return claimHas(e, want) })
	case []any:
		return slices.ContainsFunc(g, func(e any) bool { return claimHas(e, want) })
	case int:
		w, ok := want.(float64)
		return ok && float64(g) == w
	case int64:
		w, ok := want.(float64)
		return ok && float64(g) == w
	}
	return got == want // string, float64, bool; objects and absent never match
}

// A scenario: one agent, its tokens, revocations and lifts applied in turn,
// every token checked after each step.

func runPropScenario(t *testing.T, rng *mrand.Rand, seed uint64, n int, pool []*propKey, js *jwksServer, st *propStats) {
	c := genPropAgent(rng, pool)
	a := c.build(t, pool, js)
	m := &propModel{c: c, pool: pool, live: map[string]*propRev{}}
	var toks []*propToken
	for i := range 8 + rng.IntN(8) {
		toks = append(toks, genPropToken(t, rng, c, pool, n*100+i))
	}
	st.tokens += len(toks)
	var applied []*propRev
	var history []string
	mismatches := 0
	check := func() {
		for _, tk := range toks {
			want, why := m.decide(tk)
			_, err := a.Check(context.Background(), tk.raw)
			got := decAllowed
			switch {
			case err == nil:
			case errors.Is(err, ErrRevoked):
				got = decRevoked
			case errors.Is(err, ErrInvalid):
				got = decInvalid
			default:
				t.Fatalf("seed %d scenario %d: Check: %v", seed, n, err)
			}
			st.checks++
			st.decisions[want]++
			ok := got == want
			if c.capacity > 0 {
				st.limited++
				// a spilled revocation may over-deny, never under-deny
				ok = ok || want == decAllowed && got == decRevoked
			}
			if ok {
				continue
			}
			mismatches++
			var live []string
			for _, id := range slices.Sorted(maps.Keys(m.live)) {
				live = append(live, m.live[id].String())
			}
			t.Errorf("seed %d scenario %d: agent says %s (%v), the contract says %s (%s)\n  agent: %v\n  token: %s\n  revocations in the model: %s\n  history: %s",
				seed, n, got, err, want, why, c, tk, strings.Join(live, " "), strings.Join(history, "; "))
			if mismatches >= 3 {
				t.FailNow()
			}
		}
	}
	check()
	steps := 4 + rng.IntN(6)
	for step := range steps {
		if len(applied) > 0 && rng.IntN(6) == 0 {
			r := applied[rng.IntN(len(applied))]
			feed(t, a, sse.Event{Type: events.TypeLift, Data: []byte(`{"key":"` + r.key + `"}`)})
			delete(m.live, r.identity())
			history = append(history, "lift "+r.String())
			st.lifts++
		} else {
			var r *propRev
			if len(applied) > 0 && rng.IntN(10) == 0 {
				// the same matchers again, other times: replaces it
				again := *applied[rng.IntN(len(applied))]
				if !again.Ban && again.JTI == "" && rng.IntN(2) == 0 {
					again.IssuedBefore = c.now.Add(-2 * time.Hour)
				}
				again.ExpiresAt = pick(rng, time.Time{}, c.now.Add(-time.Hour), c.now.Add(5*time.Hour))
				r = &again
			} else {
				r = genPropRev(rng, c, pool, toks)
			}
			if _, namesake := m.live[r.identity()]; namesake && !m.alive(r) {
				// the broadcaster does not publish a revocation that has
				// already expired
				history = append(history, "not published "+r.String())
				continue
			}
			r.apply(t, a, c)
			m.live[r.identity()] = r
			applied = append(applied, r)
			history = append(history, "revoke "+r.String())
			st.revocations++
		}
		if step%2 == 1 || step == steps-1 {
			check()
		}
	}
}
