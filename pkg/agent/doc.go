// Package agent is what a Go resource server embeds to enforce revocations:
// it follows a revocast broadcaster's event stream into a local denylist,
// verifies JWTs locally, and answers "is this token allowed?" without any
// network I/O per request.
//
// # Use
//
//	a, err := agent.New([]string{"http://broadcaster:8080"},
//		agent.WithAlgorithms("RS256"),
//		agent.WithPublicKeyFile("/etc/keys/issuer.pem"),
//		agent.WithIssuers("https://idp.example"),
//		agent.WithAudiences("orders-api"),
//	)
//	go a.Run(ctx)                          // follow the stream until ctx ends
//	http.Handle("/", a.Middleware(api))    // 401 / 503, claims in the context
//	reg.MustRegister(a.Collectors()...)    // Prometheus metrics
//
// # The stream
//
// Run follows GET /v1/events on one or more broadcasters (pkg/sse: it
// reconnects with backoff and resumes with Last-Event-ID) and applies each
// event to a cache.Denylist: revoke adds a revocation, lift removes one.
// The agent is ready after the first synced event, which ends the replay of
// the full live state. A reset event means the stream cannot be resumed
// from where the agent was (the broadcaster's log was recreated): the full
// state follows, and the agent builds it in a fresh denylist while Check
// consults both the old and the new one, until the next synced swaps them.
// A revoked token is never admitted during a rebuild; a lifted one may stay
// denied for those moments.
//
// # Receipts
//
// With WithName, the agent names itself on the stream (the Revocast-Agent
// header: the name and a random instance id per New) and reports the last
// event it applied to the broadcaster it streams from (POST
// /v1/agents/applied): after events, at most once per WithReportInterval,
// and after heartbeats. The broadcaster then lists it in GET /v1/agents and
// counts it in each revocation's enforcement (and revoke --wait). Reports
// go out from a goroutine of their own: Check and the stream only store the
// position, and a report that fails is dropped (the next carries a newer
// position).
//
// # Checking a token
//
// Verification lives in pkg/jwtverify, which the broadcaster shares; the
// agent adds the denylist, the maximum token lifetime L announced by the
// broadcaster, and the verified-token cache.
//
// Check verifies the JWT with golang-jwt/v5: the algorithm must be in the
// allow-list given with WithAlgorithms ("none" is refused, and HS* only with
// an HMAC secret, so a public key can never serve as an HMAC secret); the
// key comes from PEM public keys or certificates, an HMAC secret, or a JWKS
// (jwkset); exp is required, exp/nbf/iat are checked with a leeway; iss
// and aud against the configured lists. Then the token's jti, sub, iss, kid,
// iat and claims are checked against the denylist.
//
// A kid revocation retires a signing key. The header's kid is written by
// whoever holds the key, so the agent always knows which key verified a
// token and matches the revocation against that key's names: its kid in the
// JWKS and its RFC 7638 thumbprint (Thumbprint; the only name of a PEM key),
// as well as the header's kid. A token with a kid is verified only by the
// JWKS entry of that kid (or, if the JWKS lacks it, by the static keys); a
// kid-less token by each key of its algorithm in turn, the first whose
// signature verifies being the one. Every key the agent loads is logged with
// its thumbprint.
//
// Only tokens that a revocation can name are admitted. Refused with
// ErrInvalid: a token that lives longer than L (exp − iat, or exp − now
// without iat; see WithMaxTokenLifetime), a jti, sub, iss or header kid
// longer than events.MaxValueLength, a header or payload that repeats a
// member name (another parser could read the other one), a header with
// crit (no extension is understood). JWKS keys meet the rules of PEM keys:
// RSA of at least MinRSABits, use absent or "sig", and a JWK's alg, when
// given, is the only algorithm it verifies.
//
// A verified token is remembered (cache.Verified, keyed by the raw token,
// until its exp plus leeway), so a repeated token skips signature
// verification: that path does not allocate. The denylist is consulted on
// every call. The cache is purged whenever the JWKS changes. The *Claims
// returned are shared between the calls with the same token and must be
// treated as read-only.
//
// A JWKS is fetched when Run starts and refreshed periodically, always in
// the background: Check never waits on the network. A token whose kid the
// current key set lacks is refused at once with ErrInvalid and triggers a
// refresh, at most one per WithJWKSRefresh's minimum interval.
//
// Tokens without iat are accepted unless WithRequireIssuedAt is set. A
// subject logout or a tenant logout applies to tokens issued before a time;
// a token without iat cannot show it was issued later, so such a revocation
// denies it for as long as the revocation lives (fail closed).
//
// # Staleness
//
// If nothing, not even a heartbeat comment, arrives from the broadcaster for
// the maximum staleness (WithMaxStaleness, default 60s; it must exceed the
// broadcaster's heartbeat interval), the agent is stale, and so it is before
// its first synced event. Under StaleClosed (the default) Check returns
// ErrStale and the middleware answers 503; under StaleOpen tokens that
// verify and are not on the denylist are allowed, counted as allowed_stale,
// and the agent logs once per staleness episode. A token found on the
// denylist is refused as revoked either way.
//
// # Errors and HTTP
//
// Check returns ErrNoToken, an error matching ErrInvalid (an *InvalidError
// wrapping golang-jwt's reason), ErrRevoked or ErrStale. Middleware and
// WriteError map them to 401 with an RFC 6750 WWW-Authenticate challenge
// (error="invalid_token" with an error_description, or a bare realm when
// there is no token) and to 503 for ErrStale.
//
// # Metrics
//
// Collectors returns Prometheus collectors (names start with
// revocast_agent_): checks by result, events applied, denylist size by tier,
// revocations spilled past the capacity, seconds since the last activity,
// reconnects, resets, readiness, freshness, JWKS refreshes. Nothing is
// registered globally.
//
// All methods of an Agent are safe for concurrent use; Run runs once at a
// time.
package agent
