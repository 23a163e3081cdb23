package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/revocast/revocast/pkg/agent"
)

// secret is an example HMAC secret (at least 32 bytes).
var secret = []byte("example-secret-of-at-least-32-bytes!!")

func ExampleNew() {
	a, err := agent.New([]string{"http://127.0.0.1:8080"},
		agent.WithAlgorithms("HS256"),
		agent.WithHMACSecret(secret),
		agent.WithIssuers("https://idp.example"),
		agent.WithAudiences("orders-api"),
		agent.WithMaxStaleness(time.Minute),
	)
	if err != nil {
		log.Fatal(err)
	}
	// Register the metrics, then follow the stream until ctx ends:
	//
	//	reg.MustRegister(a.Collectors()...)
	//	go a.Run(ctx)
	//	<-a.ReadyChan()
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collectors()...)
	fmt.Println("ready:", a.Ready())

	// Unsafe configurations are refused.
	_, err = agent.New([]string{"http://127.0.0.1:8080"}, agent.WithAlgorithms("none"), agent.WithHMACSecret(secret))
	fmt.Println(err)
	// Output:
	// ready: false
	// agent: algorithm "none" is never accepted
}

func ExampleAgent_Check() {
	a, err := agent.New([]string{"http://127.0.0.1:8080"},
		agent.WithAlgorithms("HS256"), agent.WithHMACSecret(secret), agent.WithIssuers("https://idp.example"))
	if err != nil {
		log.Fatal(err)
	}
	sign := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		return s
	}
	now := time.Now()
	valid := sign(jwt.MapClaims{"sub": "alice", "iss": "https://idp.example", "exp": now.Add(time.Hour).Unix()})
	expired := sign(jwt.MapClaims{"sub": "alice", "iss": "https://idp.example", "exp": now.Add(-time.Hour).Unix()})

	for _, tok := range []string{"", "not-a-jwt", expired, valid} {
		claims, err := a.Check(context.Background(), tok)
		switch {
		case err == nil:
			fmt.Println("allowed:", claims.Subject)
		case errors.Is(err, agent.ErrNoToken):
			fmt.Println("no token")
		case errors.Is(err, jwt.ErrTokenExpired):
			fmt.Println("invalid: expired")
		case errors.Is(err, agent.ErrInvalid):
			fmt.Println("invalid")
		case errors.Is(err, agent.ErrRevoked):
			fmt.Println("revoked")
		case errors.Is(err, agent.ErrStale):
			// Run has not received the revocation state yet: under the
			// default (closed) stale policy, nothing is admitted.
			fmt.Println("stale")
		}
	}
	// Output:
	// no token
	// invalid
	// invalid: expired
	// stale
}

func ExampleAgent_Middleware() {
	a, err := agent.New([]string{"http://127.0.0.1:8080"},
		agent.WithAlgorithms("HS256"), agent.WithHMACSecret(secret))
	if err != nil {
		log.Fatal(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := agent.ClaimsFromContext(r.Context())
		fmt.Fprintln(w, "hello", claims.Subject)
	})
	h := a.Middleware(api, agent.WithRealm("orders"))

	for _, auth := range []string{"", "Bearer not-a-jwt"} {
		req := httptest.NewRequest("GET", "/orders", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// Output:
	// 401 Bearer realm="orders"
	// 401 Bearer realm="orders", error="invalid_token", error_description="token is malformed: token contains an invalid number of segments"
}
