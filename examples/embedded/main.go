// Command embedded is an example resource server that embeds the revocast
// agent: every request to /orders must carry a bearer token that verifies
// against the issuer's public key and that no live revocation matches. The
// check is a local memory lookup; the agent follows the broadcaster's
// stream in the background.
//
//	go run ./examples/embedded --broadcaster http://127.0.0.1:8080 \
//	    --public-key issuer.pem --issuer https://idp.example --audience orders-api
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/revocast/revocast/pkg/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("embedded", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broadcasters := fs.String("broadcaster", "http://127.0.0.1:8080", "broadcaster URL(s), comma-separated")
	keyFile := fs.String("public-key", "", "PEM file of the token issuer's public key (required)")
	issuer := fs.String("issuer", "", "accepted iss")
	audience := fs.String("audience", "", "accepted aud")
	addr := fs.String("addr", "127.0.0.1:8000", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	// 1. Configure: keys, algorithms, issuer, audience.
	pemData, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	keys, err := agent.ParsePublicKeysPEM(pemData)
	if err != nil {
		return err
	}
	opts := []agent.Option{
		agent.WithLogger(log),
		agent.WithPublicKeys(keys...),
		// an explicit allow-list: here, what the keys can verify
		agent.WithAlgorithms(agent.AlgorithmsFor(keys, false, false)...),
	}
	if *issuer != "" {
		opts = append(opts, agent.WithIssuers(*issuer))
	}
	if *audience != "" {
		opts = append(opts, agent.WithAudiences(*audience))
	}
	a, err := agent.New(strings.Split(*broadcasters, ","), opts...)
	if err != nil {
		return err
	}

	// 2. Follow the stream until ctx ends.
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(ctx) }()

	// 3. Protect the API with the middleware; expose health and metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collectors()...)
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := agent.ClaimsFromContext(r.Context()) // read-only, shared
		fmt.Fprintf(w, "orders of %s\n", claims.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /orders", a.Middleware(orders, agent.WithRealm("orders")))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.Fresh() {
			http.Error(w, "revocation state not synced or stale", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("embedded listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-agentDone
}
